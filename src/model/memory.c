/*
 * The memory of recent values (memory.h): a ring buffer of floats with a
 * running sum, and the one vectorised pass per event that both the
 * recurrent regime's box-kernel density and the local noise's pair
 * statistics need (pf.c, "recent values").
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "memory.h"
#include "bayeswatch/mem.h"
#include "bayeswatch/model.h"
#include "bayeswatch/timefmt.h"
#include "vecmath.h"

int bw__memory_init(bw__memory_t *m, int window)
{
    m->w = window;
    m->n = m->pos = 0;
    m->sum = m->ref = 0.0;
    bw__memory_assume_times(m, INT64_MIN, 0.0);
    m->v = bw_calloc((size_t)window + 1, sizeof(float));
    return m->v == NULL ? -1 : 0;
}

void bw__memory_free(bw__memory_t *m)
{
    bw_free(m->v);
    m->v = NULL;
}

/* At a wrap: the values re-expressed about @p origin, so that a series
 * that drifts keeps its values near it. */
static void recentre(bw__memory_t *m, double origin)
{
    double shift = origin - m->ref;

    if (!isfinite(shift) || shift == 0.0) {
        return;
    }
    m->ref = origin;
    for (int i = 0; i < m->n; i++) {
        m->v[i] = (float)((double)m->v[i] - shift);
    }
}

void bw__memory_resum(bw__memory_t *m)
{
    double s = 0.0;

    for (int i = 0; i < m->n; i++) {
        s += m->v[i];
    }
    m->sum = s;
}

/* Log a gap before the value about to be pushed at @p t_ms, the oldest
 * dropped when the log is full (the values before it lose their gaps). */
static void log_gap(bw__memory_t *m, int64_t t_ms)
{
    if (m->ngaps == BW__MEM_GAPS) {
        m->horizon = m->gap[0].at;
        m->t_horizon = m->gap[0].after;
        m->t_behind = m->gap[0].before;
        memmove(m->gap, m->gap + 1, (BW__MEM_GAPS - 1) * sizeof(m->gap[0]));
        m->ngaps--;
    }
    m->gap[m->ngaps].at = m->pushes;
    m->gap[m->ngaps].before = m->t_push;
    m->gap[m->ngaps++].after = t_ms;
}

/* The newest stretch's own mean step: 0 while it holds one value. */
static double stretch_step(const bw__memory_t *m)
{
    uint64_t at = m->ngaps > 0 ? m->gap[m->ngaps - 1].at : m->horizon;
    int64_t t0 = m->ngaps > 0 ? m->gap[m->ngaps - 1].after : m->t_horizon;
    uint64_t count = m->pushes - at;

    return count >= 2 ? ((double)m->t_push - (double)t0) / (double)(count - 1)
                      : 0.0;
}

/* The largest spacing whose window of steps stays within the times'
 * range: ages stay far from int64 overflow. */
static double max_spacing(const bw__memory_t *m)
{
    return (double)BW_TIME_MAX_MS / (m->w + 1);
}

/* A step of 1.5 times the newest stretch's mean step or more (a value
 * missing, or left out) or of half of it or less (the sampling sped up)
 * starts a new stretch; a stretch's second value sets its step, whatever
 * it is (a series' first, or the first after a gap). So the values in a
 * stretch are evenly spaced as far as their own steps tell. The spacing
 * learns from every step as the filter's interval does
 * (bw_interval_update: an exponentially weighted mean over about 20 steps,
 * each clamped to [1/4, 4] times it); it times only the values before the
 * horizon. */
static void learn_spacing(bw__memory_t *m, int64_t t_ms)
{
    double dt, step;

    if (m->t_push == INT64_MIN || t_ms <= m->t_push) {
        return;
    }
    dt = (double)t_ms - (double)m->t_push; /* no overflow for any int64 */
    step = stretch_step(m);
    if (step > 0.0 && (dt >= 1.5 * step || dt <= 0.5 * step)) {
        log_gap(m, t_ms);
    }
    m->spacing = fmin(
        bw_interval_update(m->spacing, dt, 1.0 - exp2(-1.0 / 20.0)),
        max_spacing(m)); /* as a load accepts it */
}

void bw__memory_push(bw__memory_t *m, double y, int64_t t_ms, double origin)
{
    if (m->w <= 0) {
        return;
    }
    if (m->pushes == 0) {
        m->t_horizon = t_ms;
        m->ref = isfinite(origin) ? origin : 0.0;
    }
    learn_spacing(m, t_ms);
    m->t_push = t_ms;
    m->pushes++;
    if (m->n == m->w) {
        m->sum -= m->v[m->pos];
    }
    m->v[m->pos] = (float)(y - m->ref);
    m->sum += m->v[m->pos];
    m->pos = (m->pos + 1) % m->w;
    if (m->n < m->w) {
        m->n++;
    }
    if (m->pos == 0) { /* no drift from the running sum, nor the origin */
        recentre(m, origin);
        bw__memory_resum(m);
    }
}

int64_t bw__memory_age_ms(const bw__memory_t *m, int k)
{
    uint64_t q = m->pushes - 1 - (uint64_t)k; /* the value's number */
    uint64_t end = m->pushes - 1;              /* the stretch's last */
    int64_t t_end = m->t_push;

    for (int g = m->ngaps - 1; g >= 0; g--) {
        const bw__mem_gap_t *p = &m->gap[g];
        if (q >= p->at) { /* in the stretch [at, end] */
            double from_first = end > p->at ? (double)(q - p->at) *
                                                  (double)(t_end - p->after) /
                                                  (double)(end - p->at)
                                            : 0.0;
            return m->t_push - p->after - llround(from_first);
        }
        end = p->at - 1;
        t_end = p->before;
    }
    if (q >= m->horizon) { /* the oldest known stretch [horizon, end] */
        double from_first = end > m->horizon
                                ? (double)(q - m->horizon) *
                                      (double)(t_end - m->t_horizon) /
                                      (double)(end - m->horizon)
                                : 0.0;
        return m->t_push - m->t_horizon - llround(from_first);
    }
    return m->t_push - m->t_behind +
           llround((double)(m->horizon - 1 - q) * m->spacing);
}

static int back_index(const bw__memory_t *m, int k)
{
    return ((m->pos - 1 - k) % m->w + m->w) % m->w;
}

/* The value k pushes back as held (relative to the origin). */
static double held_back(const bw__memory_t *m, int k)
{
    return m->v[back_index(m, k)];
}

double bw__memory_back(const bw__memory_t *m, int k)
{
    return m->ref + held_back(m, k);
}

double bw__memory_mean(const bw__memory_t *m)
{
    return m->ref + m->sum / m->n;
}

void bw__memory_shift_back(bw__memory_t *m, int k, double delta)
{
    int i = back_index(m, k);

    m->v[i] = (float)(m->v[i] - delta);
}

/* Values v[0..m-1] in time order (one unbroken stretch of the ring). The
 * squared differences are summed in single precision in units of the
 * neighbourhood's half-width (r->inv = 1/half-width): inside it they are at
 * most 4, so nothing overflows, and a float lane holds twice the values of a
 * double one; the relative rounding of the sum is below 1e-5, far inside
 * the estimate's own sampling error. */
BW_VECTOR_CLONES
static void scan_stretch(const float *v, int m, bw__mem_scan_t *r)
{
    const float lo = r->lo, hi = r->hi, alo = r->alo, ahi = r->ahi;
    const float zlo = r->zlo, zhi = r->zhi, inv = r->inv;
    const float dlo = r->dlo, dhi = r->dhi;
    int count = (v[m - 1] >= lo) & (v[m - 1] <= hi) &
                ((v[m - 1] <= zlo) | (v[m - 1] >= zhi)),
        near = (v[m - 1] >= lo) & (v[m - 1] <= hi), pairs = 0, dwell = 0;
    float ss = 0.0f;

    BW_SIMD_SUM(count, near, pairs, dwell, ss)
    for (int i = 0; i < m - 1; i++) { /* branch-free: vectorises */
        int in = (v[i] >= alo) & (v[i] <= ahi) & (v[i + 1] >= alo) &
                 (v[i + 1] <= ahi);
        int k0 = (v[i] >= lo) & (v[i] <= hi);
        int k1 = (v[i + 1] >= dlo) & (v[i + 1] <= dhi);
        float d = (v[i + 1] - v[i]) * inv;
        count += k0 & ((v[i] <= zlo) | (v[i] >= zhi));
        near += k0;
        dwell += k0 & k1;
        pairs += in;
        ss += in ? d * d : 0.0f;
    }
    r->count += count;
    r->near += near;
    r->pairs += pairs;
    r->dwell += dwell;
    r->ss += ss;
}

/* The whole memory: when the ring is full and does not start at 0 it is two
 * stretches, joined by the pair (last slot, slot 0). */
void bw__memory_scan(const bw__memory_t *m, int skip, bw__mem_scan_t *r)
{
    const float *v = m->v;
    int n = m->n, pos = m->pos, w = m->w;
    int first = n < w ? 0 : pos, len = n - skip, head;

    r->count = r->near = r->pairs = r->dwell = 0;
    r->ss = 0.0;
    if (len < 2) {
        return;
    }
    head = len < w - first ? len : w - first; /* up to the ring's end */
    scan_stretch(v + first, head, r);
    if (head == len) {
        return;
    }
    scan_stretch(v, len - head, r);
    if (v[w - 1] >= r->alo && v[w - 1] <= r->ahi && v[0] >= r->alo &&
        v[0] <= r->ahi) {
        float d = (v[0] - v[w - 1]) * r->inv;
        r->pairs++;
        r->ss += d * d;
    }
    r->dwell += v[w - 1] >= r->lo && v[w - 1] <= r->hi && v[0] >= r->dlo &&
                v[0] <= r->dhi;
}

static int in_kernel(const bw__mem_scan_t *r, double x)
{
    return x >= r->lo && x <= r->hi;
}

/* What the scan's count holds: in the kernel, outside the zone. */
static int in_count(const bw__mem_scan_t *r, double x)
{
    return in_kernel(r, x) && (x <= r->zlo || x >= r->zhi);
}

static int in_stay(const bw__mem_scan_t *r, double x)
{
    return x >= r->dlo && x <= r->dhi;
}

void bw__memory_unscan(const bw__memory_t *m, int skip, int e,
                       bw__mem_scan_t *r)
{
    if (m->n - skip < 2) { /* the scan counted nothing */
        return;
    }
    for (int k = skip; k < skip + e && k < m->n; k++) {
        double x = held_back(m, k);
        r->near -= in_kernel(r, x);
        if (k + 1 < m->n) { /* the pair (older value, x) */
            r->dwell -= in_kernel(r, held_back(m, k + 1)) & in_stay(r, x);
        }
    }
}

int bw__memory_count_newest(const bw__memory_t *m, int skip, int e,
                            const bw__mem_scan_t *r)
{
    int c = 0;

    if (m->n - skip < 2) { /* the scan counted nothing */
        return 0;
    }
    for (int k = skip; k < skip + e && k < m->n; k++) {
        c += in_count(r, held_back(m, k));
    }
    return c;
}

/* The first k >= from whose value was seen at least @p age_ms before the
 * newest (n if none): ages grow with k, so a bisection. */
static int k_at_age(const bw__memory_t *m, int from, int64_t age_ms)
{
    int lo = from, hi = m->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (bw__memory_age_ms(m, mid) >= age_ms) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

void bw__memory_scan_phase(const bw__memory_t *m, int skip, int64_t ahead_ms,
                           int64_t period_ms, int64_t half_ms,
                           const bw__mem_scan_t *r, int stop_near,
                           int stop_count, bw__mem_phase_t *ph)
{
    int64_t first;

    memset(ph, 0, sizeof(*ph));
    if (m->n - skip < 2 || period_ms <= 0 || half_ms < 0) {
        return;
    }
    /* from the first window that reaches back past the event's time */
    first = (ahead_ms - half_ms) / period_ms;
    for (int64_t mid = (first > 1 ? first : 1) * period_ms - ahead_ms;;
         mid += period_ms) {
        int k0 = k_at_age(m, skip, mid - half_ms);
        int k1 = k0 < m->n ? k_at_age(m, k0, mid + half_ms + 1) : k0;
        if (k0 >= m->n) {
            break;
        }
        k0 = k0 > 0 ? k0 : 1; /* a value followed by a newer one */
        for (int k = k0; k < k1; k++) {
            double x = held_back(m, k);
            ph->count += in_count(r, x);
            ph->near += in_kernel(r, x);
            ph->dwell += in_kernel(r, x) & in_stay(r, held_back(m, k - 1));
            if (ph->near >= stop_near && ph->count >= stop_count) {
                ph->stopped = 1;
                return;
            }
        }
        ph->held += k1 > k0 ? k1 - k0 : 0;
    }
}

void bw__memory_save(const bw__memory_t *m, bw_wbuf_t *w)
{
    bw_wbuf_u32(w, (uint32_t)m->n);
    bw_wbuf_u32(w, (uint32_t)m->pos);
    bw_wbuf_f64(w, m->sum);
    bw_wbuf_f32s(w, m->v, (size_t)m->n);
}

/* What push can leave: finite values and a ring still filling written up
 * to n. The running sum is not checked against the values: it is restored
 * bit for bit, and it may hold the rounding residue of a value far larger
 * than those now held (a 1e12 among values of 1e-3 leaves about 1e-3 until
 * the next wrap resums), so a live model's own state was refused. A finite
 * sum is all a load can ask (bw_rbuf_finite); a wrong one lasts until the
 * wrap. */
static bool memory_consistent(const bw__memory_t *m)
{
    if (m->n < m->w && m->pos != m->n) {
        return false;
    }
    for (int i = 0; i < m->n; i++) {
        if (!isfinite(m->v[i])) {
            return false;
        }
    }
    return true;
}

void bw__memory_save_times(const bw__memory_t *m, bw_wbuf_t *w)
{
    bw_wbuf_i64(w, m->t_push);
    bw_wbuf_f64(w, m->spacing);
    bw_wbuf_u64(w, m->pushes);
    bw_wbuf_u64(w, m->horizon);
    bw_wbuf_i64(w, m->t_horizon);
    bw_wbuf_i64(w, m->t_behind);
    bw_wbuf_u32(w, (uint32_t)m->ngaps);
    for (int g = 0; g < m->ngaps; g++) {
        bw_wbuf_u64(w, m->gap[g].at);
        bw_wbuf_i64(w, m->gap[g].before);
        bw_wbuf_i64(w, m->gap[g].after);
    }
}

void bw__memory_save_origin(const bw__memory_t *m, bw_wbuf_t *w)
{
    bw_wbuf_f64(w, m->ref);
}

/* What push can leave: 0 before a first push, then an origin the filter
 * passes (the first value, then its level: within the values' range) and
 * values held about it that come back within that range. */
void bw__memory_load_origin(bw__memory_t *m, bw_rbuf_t *r)
{
    m->ref = bw_rbuf_finite(r);
    if (r->err != BW_OK) {
        m->ref = 0.0;
        return;
    }
    if (fabs(m->ref) > BW_MODEL_MAX_ABS || (m->pushes == 0 && m->ref != 0.0)) {
        r->err = BW_ERR_CORRUPT;
    }
    for (int i = 0; i < m->n && r->err == BW_OK; i++) {
        if (!(fabs(m->ref + m->v[i]) <= 2.0 * BW_MODEL_MAX_ABS)) {
            r->err = BW_ERR_CORRUPT;
        }
    }
    if (r->err != BW_OK) {
        m->ref = 0.0;
    }
}

void bw__memory_assume_times(bw__memory_t *m, int64_t t_ms,
                             double spacing_ms)
{
    bool known = m->n > 0 && bw_time_valid(t_ms);

    m->spacing = spacing_ms > 0.0 && spacing_ms <= max_spacing(m)
                     ? spacing_ms
                     : 0.0;
    m->t_push = known ? t_ms : INT64_MIN;
    m->pushes = known ? (uint64_t)m->n : 0;
    m->horizon = 0;
    m->t_horizon = INT64_MIN;
    if (known) { /* the oldest held at the spacing back, not before 0 */
        double back = (m->n - 1) * m->spacing;
        m->t_horizon = back < (double)t_ms ? t_ms - llround(back) : 0;
    }
    m->t_behind = INT64_MIN;
    m->ngaps = 0;
}

/* What push can leave: at least as many values pushed as held, not near
 * the counter's end; a spacing whose window stays within the times'
 * range; nothing else before a first push; after it, valid newest and
 * horizon times in order, a horizon at a value pushed (a value before it,
 * and its earlier time, once a gap was dropped), and gaps in push order
 * after the horizon at values pushed, each between times in order from the
 * horizon's, the newest not after the newest value. */
static bool times_consistent(const bw__memory_t *m)
{
    uint64_t prev = m->horizon;
    int64_t t_prev;

    if (m->pushes < (uint64_t)m->n || m->pushes > (UINT64_C(1) << 62) ||
        !(m->spacing >= 0.0 && m->spacing <= max_spacing(m))) {
        return false;
    }
    if (m->pushes == 0) { /* as init left it */
        return m->t_push == INT64_MIN && m->horizon == 0 && m->ngaps == 0;
    }
    if (m->horizon >= m->pushes || !bw_time_valid(m->t_push) ||
        !bw_time_valid(m->t_horizon) || m->t_horizon > m->t_push ||
        (m->horizon > 0) != (m->t_behind != INT64_MIN) ||
        (m->horizon > 0 && (!bw_time_valid(m->t_behind) ||
                            m->t_behind >= m->t_horizon))) {
        return false;
    }
    t_prev = m->t_horizon;
    for (int g = 0; g < m->ngaps; g++) {
        const bw__mem_gap_t *p = &m->gap[g];
        if (p->at <= prev || p->at >= m->pushes || p->before < t_prev ||
            !bw_time_valid(p->before) || p->after <= p->before ||
            p->after > m->t_push) {
            return false;
        }
        prev = p->at;
        t_prev = p->after;
    }
    return true;
}

void bw__memory_load_times(bw__memory_t *m, bw_rbuf_t *r)
{
    m->t_push = bw_rbuf_i64(r);
    m->spacing = bw_rbuf_f64(r);
    m->pushes = bw_rbuf_u64(r);
    m->horizon = bw_rbuf_u64(r);
    m->t_horizon = bw_rbuf_i64(r);
    m->t_behind = bw_rbuf_i64(r);
    m->ngaps = (int)bw_rbuf_u32_in(r, 0, BW__MEM_GAPS);
    for (int g = 0; g < m->ngaps; g++) {
        m->gap[g].at = bw_rbuf_u64(r);
        m->gap[g].before = bw_rbuf_i64(r);
        m->gap[g].after = bw_rbuf_i64(r);
    }
    if (r->err == BW_OK && !times_consistent(m)) {
        r->err = BW_ERR_CORRUPT;
    }
    if (r->err != BW_OK) {
        m->ngaps = 0;
    }
}

void bw__memory_load(bw__memory_t *m, bw_rbuf_t *r)
{
    m->n = (int)bw_rbuf_u32_in(r, 0, (uint32_t)m->w);
    m->pos = (int)bw_rbuf_u32_in(r, 0, (uint32_t)(m->w > 0 ? m->w - 1 : 0));
    m->sum = bw_rbuf_finite(r);
    m->ref = 0.0; /* as held, until bw__memory_load_origin says otherwise */
    bw_rbuf_f32s(r, m->v, (size_t)m->n);
    if (r->err == BW_OK && !memory_consistent(m)) {
        r->err = BW_ERR_CORRUPT;
    }
}
