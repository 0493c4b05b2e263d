/*
 * Stream threads (pipeline.threads > 1): each worker drains a bounded
 * queue of records of the partitions bound to it, in batches, so that
 * partitions are scored in parallel while each partition's records stay
 * in order on one thread. The main thread quiesces the workers before any
 * step that needs every output produced (see pipeline_int.h).
 */
#include "pipeline_int.h"

static void *worker_main(void *arg)
{
    bw_worker_t *w = arg;
    item_t batch[BATCH];

    pthread_mutex_lock(&w->mu);
    for (;;) {
        int n = 0;
        while (w->count == 0 && !w->quit) {
            pthread_cond_wait(&w->cv, &w->mu);
        }
        if (w->count == 0) {
            break; /* quit, and nothing left */
        }
        while (n < BATCH && w->count > 0) {
            batch[n++] = w->q[w->head];
            w->head = (w->head + 1) % QUEUE_CAP;
            w->count--;
        }
        w->busy = true;
        pthread_cond_broadcast(&w->cv); /* room for the dispatcher */
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < n; i++) {
            bw__record(w, batch[i].t, batch[i].m);
            rd_kafka_message_destroy(batch[i].m);
        }
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        pthread_cond_broadcast(&w->cv); /* maybe idle: for bw__quiesce */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

bw_err_t bw__workers_start(bw_pipeline_t *p, char *errstr, size_t errstr_size)
{
    if (p->n_workers == 1) {
        return BW_OK; /* records are processed inline */
    }
    for (int i = 0; i < p->n_workers; i++) {
        bw_worker_t *w = &p->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(errstr, errstr_size,
                     "pipeline: cannot start stream thread %d", i);
            return BW_ERR_NOMEM;
        }
        w->running = true;
    }
    return BW_OK;
}

void bw__workers_stop(bw_pipeline_t *p)
{
    for (int i = 0; i < p->n_workers; i++) {
        bw_worker_t *w = &p->workers[i];
        if (!w->running) {
            continue;
        }
        pthread_mutex_lock(&w->mu);
        w->quit = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        w->running = false;
    }
}

void bw__dispatch(bw_pipeline_t *p, task_t *t, rd_kafka_message_t *m)
{
    bw_worker_t *w = &p->workers[t->worker];

    if (!w->running) {
        bw__record(w, t, m);
        rd_kafka_message_destroy(m);
        return;
    }
    pthread_mutex_lock(&w->mu);
    while (w->count == QUEUE_CAP) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    w->q[(w->head + w->count) % QUEUE_CAP] = (item_t){m, t};
    w->count++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void bw__quiesce(bw_pipeline_t *p)
{
    for (int i = 0; i < p->n_workers; i++) {
        bw_worker_t *w = &p->workers[i];
        if (!w->running) {
            continue;
        }
        pthread_mutex_lock(&w->mu);
        while (w->count > 0 || w->busy) {
            pthread_cond_wait(&w->cv, &w->mu);
        }
        pthread_mutex_unlock(&w->mu);
    }
}
