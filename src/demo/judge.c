/*
 * The demo's judge: every alert of the live part (a score over the alert
 * threshold, a probabilistic SLO breach when it starts, a fused threat at
 * level high or above) is the detection of an injected incident of its
 * region and signal, within the incident or DEMO_GRACE_MIN minutes after
 * it, or else a false alarm. Pure bookkeeping: the demo and the test over
 * many seeds (test_demo) judge alike.
 */
#include "demo_int.h"

void bw__demo_judge_init(bw_demo_judge_t *j, const bw_incident_t *inc,
                         int live_min, double threshold)
{
    *j = (bw_demo_judge_t){
        .inc = inc, .live_min = live_min, .threshold = threshold};
    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        j->first_alert[i] = -1;
    }
}

static bool in_window(const bw_incident_t *in, int live)
{
    return live >= in->start &&
           (in->duration < 0 ||
            live < in->start + in->duration + DEMO_GRACE_MIN);
}

/* An alert of @p region's @p metric (or its threat, metric -1). */
static void classify(bw_demo_judge_t *j, int region, int metric, int live)
{
    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        const bw_incident_t *in = &j->inc[i];
        bool match = in->region == region &&
                     (metric < 0 ? in->threat : (in->metrics >> metric) & 1);
        if (match && in_window(in, live)) {
            if (j->first_alert[i] < 0) {
                j->first_alert[i] = live;
            }
            return;
        }
    }
    j->false_alarms++;
}

int bw__demo_judge_score(bw_demo_judge_t *j, int region, int metric, int live,
                         const bw_score_t *sc)
{
    int raised = 0;

    j->live_scores++;
    if (metric == M_ERRORS) {
        bool breach = sc->p_slo >= j->threshold;
        if (breach && !j->breached[region]) {
            classify(j, region, metric, live);
            raised |= BW_JUDGE_SLO;
        }
        j->breached[region] = breach;
    }
    if (sc->alert) {
        classify(j, region, metric, live);
        raised |= BW_JUDGE_ALERT;
    }
    return raised;
}

bool bw__demo_judge_threat(bw_demo_judge_t *j, int region, int live, int level)
{
    if (level < BW_LEVEL_HIGH) {
        return false;
    }
    classify(j, region, -1, live);
    return true;
}

int bw__demo_judge_injected(const bw_demo_judge_t *j)
{
    int n = 0;

    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        n += j->inc[i].start < j->live_min;
    }
    return n;
}

int bw__demo_judge_detected(const bw_demo_judge_t *j)
{
    int n = 0;

    for (int i = 0; i < DEMO_INCIDENTS; i++) {
        n += j->inc[i].start < j->live_min && j->first_alert[i] >= 0;
    }
    return n;
}
