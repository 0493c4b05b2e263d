/*
 * Local checkpoints (state.dir): a partition's whole state written on a
 * clean stop or when the partition is given up, so that the next restore
 * reads local disk plus the changelog's tail instead of the whole
 * changelog (Kafka Streams' .checkpoint files, which hold offsets next to a
 * persistent store; here the file holds the records too).
 *
 * File STATE_DIR/TOPIC-PARTITION-HASH.ckpt (TOPIC cut to 100 bytes, HASH
 * the CRC-32 of the changelog topic's and the input topic's names: two
 * names of up to 249 bytes would pass NAME_MAX), written to a temporary
 * name, synced, renamed and the directory synced: "BWCK" | u32 version |
 * i64 changelog offset (its end when written) | u32 records | u32 length
 * and the changelog topic's name | each record: u32 key length, key, u32
 * value length, value (a state envelope) | u32 CRC-32 of all preceding
 * bytes.
 *
 * Trusted only if it reads back whole (magic, version, checksum), was
 * written for this changelog topic (two consumer groups sharing state.dir,
 * or a reset to a new group_id, must not read each other's state and skip
 * their own changelog's head), is younger than MAX_AGE (a tombstone later
 * in the changelog may be compacted away after the topic's
 * delete.retention.ms, one day by default) and its offset lies within the
 * changelog partition's current offsets. Anything else means restoring
 * from the changelog alone, with a log line: never a crash loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bayeswatch/buf.h"
#include "bayeswatch/hash.h"
#include "bayeswatch/mem.h"
#include "pipeline_int.h"

#define CKPT_VERSION 2 /* 2: the changelog topic's name */
#define MAX_AGE_S (12 * 3600)
#define MAX_AHEAD_S 300 /* dated ahead of the clock: its age not known */
#define WATERMARK_TIMEOUT_MS 10000
#define PATH_MAX_CKPT 1024

static void path_of(const bw_pipeline_t *p, const task_t *t, char *out,
                    size_t n)
{
    uint32_t h = bw_crc32(0, (const uint8_t *)p->cl_topic,
                          strlen(p->cl_topic) + 1); /* with its NUL */

    h = bw_crc32(h, (const uint8_t *)t->topic, strlen(t->topic));
    snprintf(out, n, "%s/%.100s-%d-%08x.ckpt", p->cfg->state.dir, t->topic,
             (int)t->partition, (unsigned)h);
}

typedef struct {
    bw_wbuf_t w;
    uint32_t n;
} ckpt_buf_t;

static void add_record(void *opaque, const char *key, size_t klen,
                       const uint8_t *v, size_t len)
{
    ckpt_buf_t *cb = opaque;

    bw_wbuf_u32(&cb->w, (uint32_t)klen);
    bw_wbuf_bytes(&cb->w, key, klen);
    bw_wbuf_u32(&cb->w, (uint32_t)len);
    bw_wbuf_bytes(&cb->w, v, len);
    cb->n++;
}

/* The directory's entry of a rename made durable (the rename itself may
 * be lost at a power cut otherwise; the file before it stays valid). */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static bw_err_t write_file(const char *dir, const char *path,
                           const bw_wbuf_t *w)
{
    char tmp[PATH_MAX_CKPT + 8];
    FILE *f;
    bool ok;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        return BW_ERR_IO;
    }
    ok = fwrite(w->data, 1, w->len, f) == w->len && fflush(f) == 0 &&
         fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return BW_ERR_IO;
    }
    sync_dir(dir);
    return BW_OK;
}

void bw__checkpoint_write(bw_pipeline_t *p, task_t *t)
{
    ckpt_buf_t cb = {{0}, 0};
    int64_t lo, hi;
    char path[PATH_MAX_CKPT], why[256] = "";
    rd_kafka_resp_err_t e;
    bw_err_t serr;

    if (!p->changelog || p->cfg->state.dir[0] == '\0' || t->restore_failed ||
        bw_engine_pending(t->eng) != 0 || t->committed != t->next) {
        /* uncommitted changes or offsets (at_least_once: the last flush
         * failed): the changelog is the truth */
        return;
    }
    e = rd_kafka_query_watermark_offsets(p->producer, p->cl_topic, t->partition,
                                         &lo, &hi, WATERMARK_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        bw__log(p, "state: no checkpoint for %s [%d]: %s", t->topic,
                (int)t->partition, rd_kafka_err2str(e));
        return;
    }
    bw_wbuf_bytes(&cb.w, "BWCK", 4);
    bw_wbuf_u32(&cb.w, CKPT_VERSION);
    bw_wbuf_i64(&cb.w, hi);
    bw_wbuf_u32(&cb.w, 0); /* record count, patched below */
    bw_wbuf_u32(&cb.w, (uint32_t)strlen(p->cl_topic));
    bw_wbuf_bytes(&cb.w, p->cl_topic, strlen(p->cl_topic));
    serr = bw_engine_snapshot(t->eng, bw__state_offset(t), add_record, &cb,
                              why, sizeof(why));
    if (serr == BW_OK && cb.w.err == BW_OK) {
        bw_wbuf_patch_u32(&cb.w, 16, cb.n);
        bw_wbuf_u32(&cb.w, bw_crc32(0, cb.w.data, cb.w.len));
    }
    path_of(p, t, path, sizeof(path));
    /* a failed snapshot writes nothing: the good checkpoint before it
     * stays (a file without its count and CRC replaced it, and a restore
     * then read the whole changelog) */
    if (serr != BW_OK) {
        bw__warn(p, "state: cannot write checkpoint %s: %s", path, why);
    } else if (cb.w.err != BW_OK ||
               write_file(p->cfg->state.dir, path, &cb.w) != BW_OK) {
        bw__warn(p, "state: cannot write checkpoint %s: %s", path,
                 cb.w.err != BW_OK ? bw_strerror(cb.w.err) : strerror(errno));
    } else {
        bw__log(p, "state: checkpoint %s: %u keys at changelog offset %lld",
                path, cb.n, (long long)hi);
    }
    bw_wbuf_free(&cb.w);
}

/* The whole file, or NULL. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = bw_malloc((size_t)n)) != NULL &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        bw_free(buf);
        buf = NULL;
    }
    *len = buf != NULL ? (size_t)n : 0;
    fclose(f);
    return buf;
}

/* Magic, version, checksum, changelog topic, age; its offset, record count
 * and where the records start. */
static const char *check_file(const bw_pipeline_t *p, const char *path,
                              const uint8_t *buf, size_t len, int64_t *offset,
                              uint32_t *n, size_t *start)
{
    struct stat sb;
    bw_rbuf_t r;
    uint32_t nlen;

    if (len < 24 || memcmp(buf, "BWCK", 4) != 0) {
        return "not a checkpoint";
    }
    bw_rbuf_init(&r, buf + len - 4, 4);
    if (bw_rbuf_u32(&r) != bw_crc32(0, buf, len - 4)) {
        return "checksum mismatch";
    }
    bw_rbuf_init(&r, buf + 4, len - 8);
    if (bw_rbuf_u32(&r) != CKPT_VERSION) {
        return "unknown version";
    }
    *offset = bw_rbuf_i64(&r);
    *n = bw_rbuf_u32(&r);
    nlen = bw_rbuf_u32(&r);
    if (r.err != BW_OK || nlen != strlen(p->cl_topic) ||
        nlen > r.len - r.pos || memcmp(r.data + r.pos, p->cl_topic, nlen) != 0) {
        return "written for another changelog topic";
    }
    *start = 4 + r.pos + nlen;
    if (stat(path, &sb) != 0 || time(NULL) - sb.st_mtime > MAX_AGE_S) {
        return "older than 12 hours";
    }
    if (sb.st_mtime - time(NULL) > MAX_AHEAD_S) { /* a copied volume */
        return "dated in the future: its age is not known";
    }
    return NULL;
}

static bw_err_t load_records(task_t *t, const uint8_t *buf, size_t len,
                             size_t start, uint32_t n, bw_restore_stats_t *rs)
{
    bw_rbuf_t r;
    char why[256];

    bw_rbuf_init(&r, buf + start, len - 4 - start);
    for (uint32_t i = 0; i < n && r.err == BW_OK; i++) {
        uint32_t klen = bw_rbuf_u32(&r);
        const uint8_t *key = r.data + r.pos;
        uint32_t vlen;
        if (klen > r.len - r.pos) {
            r.err = BW_ERR_CORRUPT;
            break;
        }
        r.pos += klen;
        vlen = bw_rbuf_u32(&r);
        if (vlen > r.len - r.pos || r.err != BW_OK) {
            r.err = BW_ERR_CORRUPT;
            break;
        }
        bw_engine_restore(t->eng, (const char *)key, klen, r.data + r.pos, vlen,
                          rs, why, sizeof(why));
        r.pos += vlen;
    }
    return r.err == BW_OK && r.pos == r.len && rs->failed == 0
               ? BW_OK
               : BW_ERR_CORRUPT;
}

/* A fresh engine for @p t (after a checkpoint failed half-way); false
 * when none can be made (the half-restored one must not be restored into
 * again: keys of the checkpoint whose tombstones the changelog has
 * compacted away would stay). */
static bool reset_engine(bw_pipeline_t *p, task_t *t, bw_restore_stats_t *rs)
{
    char errstr[256];
    bw_engine_t *eng = bw_engine_new(p->cfg, errstr, sizeof(errstr));

    memset(rs, 0, sizeof(*rs));
    rs->offset = -1;
    if (eng == NULL) {
        return false;
    }
    if (!p->changelog) {
        bw_engine_untracked(eng);
    }
    bw__task_engine(p, t, eng);
    return true;
}

bw_err_t bw__checkpoint_load(bw_pipeline_t *p, task_t *t, int64_t *from,
                             bw_restore_stats_t *rs)
{
    char path[PATH_MAX_CKPT];
    const char *why;
    uint8_t *buf;
    size_t len = 0, start = 0;
    int64_t offset = 0, lo, hi;
    uint32_t n = 0;
    rd_kafka_resp_err_t e;

    if (p->cfg->state.dir[0] == '\0') {
        return BW_ERR_NOTFOUND;
    }
    path_of(p, t, path, sizeof(path));
    buf = slurp(path, &len);
    if (buf == NULL) {
        return BW_ERR_NOTFOUND;
    }
    why = check_file(p, path, buf, len, &offset, &n, &start);
    if (why == NULL) {
        e = rd_kafka_query_watermark_offsets(p->restorer, p->cl_topic,
                                             t->partition, &lo, &hi,
                                             WATERMARK_TIMEOUT_MS);
        why = e != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(e)
              : offset < lo || offset > hi
                  ? "its offset is not in the changelog (a new topic?)"
                  : NULL;
    }
    if (why == NULL && load_records(t, buf, len, start, n, rs) != BW_OK) {
        why = rs->failed > 0 ? "a record could not be held"
                             : "a record does not read back";
        if (!reset_engine(p, t, rs)) {
            bw_free(buf);
            return bw__fatal(p, "state restore",
                             "no fresh engine after a failed checkpoint");
        }
    }
    bw_free(buf);
    if (why != NULL) {
        bw__warn(p,
                 "state: checkpoint %s not used (%s): restoring from the "
                 "changelog",
                 path, why);
        return BW_ERR_CORRUPT;
    }
    *from = offset;
    return BW_OK;
}
