/* enc_cli.c: the encoder's commands: `trail encode` (file replay; the replay itself, exactly once,
 * is enc_replay in enc_import.c), `trail reencode`, `trail inspect`. Importers are in
 * enc_import.c, the benchmark in enc_bench.c.
 */
#include "core_err.h"
#include "core_report.h"
#include "core_util.h"
#include "enc_store.h"
#include "mdl.h"
#include "sch_event.h"
#include "enc_cli.h"
#include "enc_replay.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

const core_cmd enc_encode_cmd = {
    "encode", "apply events to the LMDB user state: --input FILE, or --brokers (worker)",
    enc_cmd_encode,
    "exit status: 0 when the input was replayed, even if some records were rejected (they are\n"
    "counted in the summary and kept in the reject file); 1 on an error, or when this run read\n"
    "records and rejected every one of them (wrong format, not events); 2 on a usage error\n",
    NULL};

/* the run's summary on stdout (JSON or lines); only committed batches count */
static void encode_summary(enc_replay_counts n, enc_store *st, const char *input, const char *rpath,
                           int json, int complete, int64_t t0) {
    double dt = (double)(core_now_ns() - t0) / 1e9;
    uint64_t total = n.skipped + n.read, damaged = 0, quar = 0;
    if (st) enc_store_damage(st, &damaged, &quar); /* committed batches only */
    n.applied -= quar < n.applied ? quar : n.applied;
    if (json) {
        printf("{\"input\":\"%s\",\"records\":%llu,\"read\":%llu,\"applied\":%llu,"
               "\"impressions\":%llu,\"rejected\":%llu,\"skipped\":%llu,\"quarantined\":%llu,"
               "\"reject_file\":\"%s\",\"seconds\":%.3f,\"complete\":%s}\n",
               input, (unsigned long long)total, (unsigned long long)n.read,
               (unsigned long long)n.applied, (unsigned long long)n.impressions,
               (unsigned long long)n.rejected, (unsigned long long)n.skipped,
               (unsigned long long)quar, rpath, dt, complete && !g_stop ? "true" : "false");
    } else {
        printf("encode %s: %llu records = %llu applied (behaviors) + %llu impressions (labeled, "
               "not behaviors) + %llu rejected + %llu skipped (already applied)%s",
               input, (unsigned long long)total, (unsigned long long)n.applied,
               (unsigned long long)n.impressions, (unsigned long long)n.rejected,
               (unsigned long long)n.skipped, quar ? "" : "\n");
        if (quar)
            printf(" + %llu quarantined (their users' stored state is damaged: trail inspect "
                   "--verify)\n",
                   (unsigned long long)quar);
        printf("  %.3f s, %.0f records/s; rejects in %s%s\n", dt, dt > 0 ? n.read / dt : 0.0, rpath,
               g_stop ? "; stopped by signal (resume by running the same command)" : "");
    }
    if (n.read > 0 && n.rejected == n.read)
        fprintf(stderr,
                "trail encode: every record read from %s was rejected (%llu of %llu), "
                "nothing applied; the reasons are in %s\n",
                input, (unsigned long long)n.rejected, (unsigned long long)n.read, rpath);
}

int enc_cmd_encode(int argc, char **argv) {
    const char *model_path = NULL, *input = NULL, *reject_path = NULL;
    enc_store_conf conf;
    uint64_t batch = 1000000;
    int json = 0, rc;
    enc_store_conf_default(&conf);
    conf.window = conf.recent = 0; /* adopt an existing store's, else the defaults */
    int no_sync = !conf.durable;
    const core_opt opts[] = {
        CORE_OPT_NEED("model", &model_path, "M",
                      "model file (its embeddings and SimHash build the buckets)"),
        CORE_OPT_NEED("store", &conf.path, "DIR", "LMDB state directory (created if missing)"),
        CORE_OPT_NEED("input", &input, "FILE",
                      "event file: JSON lines or the binary encoding ('-' = stdin, no resume);\n"
                      "a resumed file must still begin with the bytes already applied\n"
                      "(appending is fine; replacing or truncating it is refused)"),
        {CORE_OPT_ROW("window", CORE_OPT_U32, &conf.window, "L",
                      "behaviors kept per user in a new store (an existing store keeps its own)"),
         .umin = 1, .umax = 1u << 24, .def = "the model's training window, or 10000"},
        {CORE_OPT_ROW("recent", CORE_OPT_U32, &conf.recent, "N",
                      "recent behaviors kept per user (an existing store keeps its own)"),
         .umin = 1, .umax = 1u << 24, .def = "64"},
        CORE_OPT_U64("batch", &batch, "K", 1, 100000000, "records per LMDB write transaction"),
        {CORE_OPT_ROW("reject", CORE_OPT_PATH, &reject_path, "FILE", "where malformed records go"),
         .def = "DIR/rejects.jsonl"},
        {CORE_OPT_ROW("map-size", CORE_OPT_SIZE, &conf.map_size, "B", "initial LMDB map size")},
        {CORE_OPT_ROW("map-max", CORE_OPT_SIZE, &conf.map_max, "B", "LMDB map growth limit")},
        CORE_OPT_FLG("no-sync", &no_sync,
                     "do not fsync each commit (a rebuild that can be redone)"),
        CORE_OPT_FLG("json", &json, "print the summary as one JSON object"),
        CORE_OPT_LOG_LEVEL,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&enc_encode_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;
    conf.durable = !no_sync;
    if (conf.map_max < conf.map_size) conf.map_max = conf.map_size;

    char err[1024], rpath[PATH_MAX + 32];
    mdl_model *m = NULL;
    enc_store *st = NULL;
    enc_replay_counts n = {0};
    int ret = 1, complete = 0;
    int64_t t0 = core_now_ns();
    /* known from the arguments alone: the summary names it even when opening fails */
    if (reject_path)
        snprintf(rpath, sizeof rpath, "%s", reject_path);
    else
        snprintf(rpath, sizeof rpath, "%s/rejects.jsonl", conf.path);
    if (mdl_model_load(&m, model_path, err, sizeof err)) {
        fprintf(stderr, "trail encode: %s\n", err);
        return 1;
    }
    conf.new_window = m->cfg.window; /* a new store keeps what the model was trained on */
    conf.writer = 1; /* one writer per store: a second one is refused here, nothing touched */
    if (enc_store_open(&st, &conf, err, sizeof err) ||
        enc_store_bind_model(st, m, err, sizeof err)) {
        fprintf(stderr, "trail encode: %s\n", err);
        goto out;
    }
    if (mdl_window_mismatch(&m->cfg, enc_store_window(st), err, sizeof err))
        fprintf(stderr, "trail encode: warning: model %s: %s\n", model_path, err);
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    enc_replay_conf rp = {input, rpath, conf.path, batch, conf.durable, &g_stop};
    if (enc_replay(st, &rp, &n, err, sizeof err)) {
        fprintf(stderr, "trail encode: %s\n", err);
        goto out;
    }
    /* nothing usable: a CSV given as events, random bytes. The rejects are committed (a rerun
     * skips them), but the run failed at what it was for, so it must not look like success. */
    complete = 1;
    ret = n.read > 0 && n.rejected == n.read;
out:
    encode_summary(n, st, input, rpath, json, complete, t0);
    enc_store_close(st);
    mdl_model_destroy(m);
    return ret;
}

// ---------------------------------------------------------------------------------------------
// reencode

/* Open the existing store in dir for `trail CMD` (writer: reencode; the readers refuse a missing
 * store). @return 0, or 1 after saying why. */
static int open_existing(const char *cmd, const char *dir, int writer, enc_store **st) {
    char p[PATH_MAX + 16], err[1024];
    struct stat sb;
    enc_store_conf conf;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    if (stat(p, &sb) != 0) return fprintf(stderr, "trail %s: no store at %s\n", cmd, dir), 1;
    enc_store_conf_default(&conf);
    conf.path = dir;
    conf.window = conf.recent = 0;
    conf.writer = writer; /* reencode writes: refused while another writer holds the store */
    conf.must_exist = !writer;
    if (enc_store_open(st, &conf, err, sizeof err))
        return fprintf(stderr, "trail %s: %s\n", cmd, err), 1;
    return 0;
}

static const core_cmd reencode_cmd = {"reencode", "rebuild every user's buckets for a new model",
                                      enc_cmd_reencode, NULL, NULL};

int enc_cmd_reencode(int argc, char **argv) {
    const char *model_path = NULL, *dir = NULL;
    const core_opt opts[] = {CORE_OPT_NEED("model", &model_path, "NEW", "the new model file"),
                             CORE_OPT_NEED("store", &dir, "DIR", "the store to rebuild"),
                             CORE_OPT_LOG_LEVEL, CORE_OPT_ENDROW};
    int rc = core_opts_parse(&reencode_cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    char err[1024], was[17], now[17];
    mdl_model *m = NULL;
    enc_store *st = NULL;
    uint64_t users = 0;
    int ret = 1;
    if (open_existing("reencode", dir, 1, &st)) return 1;
    if (mdl_model_load(&m, model_path, err, sizeof err)) {
        fprintf(stderr, "trail reencode: %s\n", err);
        goto out;
    }
    if (mdl_window_mismatch(&m->cfg, enc_store_window(st), err, sizeof err))
        fprintf(stderr, "trail reencode: warning: model %s: %s\n", model_path, err);
    mdl_version_hex(enc_store_encoding_version(st), was);
    int64_t t0 = core_now_ns();
    if (enc_store_reencode(st, m, &users, err, sizeof err)) {
        fprintf(stderr, "trail reencode: %s\n", err);
        goto out;
    }
    mdl_version_hex(m->encoding_version, now);
    printf(
        "reencode %s: %llu users rebuilt from their windows, encoding version %s -> %s (%.3f s)\n",
        dir, (unsigned long long)users, was, now, (double)(core_now_ns() - t0) / 1e9);
    ret = 0;
out:
    enc_store_close(st);
    mdl_model_destroy(m);
    return ret;
}

// ---------------------------------------------------------------------------------------------
// inspect

static void verify_line(uint64_t user_id, const char *what, uint64_t chunk, int err, void *opaque) {
    (void)opaque;
    char where[48] = "record";
    if (!strcmp(what, "chunk"))
        snprintf(where, sizeof where, "window chunk %llu", (unsigned long long)chunk);
    fprintf(stderr, "trail inspect: user %llu: %s failed its %s\n", (unsigned long long)user_id,
            where, err == CORE_ECHECKSUM ? "checksum" : "format check");
}

/* inspect --digest: the state's and the positions' digests; @return the exit code */
static int inspect_digest(enc_store *st, const char *dir) {
    char ver[17];
    int rc;
    uint64_t d, dp, users, chunks, lagging;
    char pos[17];
    if ((rc = enc_store_digest(st, ENC_DIGEST_STATE, &d)) ||
        (rc = enc_store_digest(st, ENC_DIGEST_POS, &dp)) ||
        (rc = enc_store_users(st, &users, &chunks)) || (rc = enc_store_lagging(st, &lagging))) {
        fprintf(stderr, "trail inspect: %s: %s\n", dir, core_strerror(rc));
        return 1;
    }
    mdl_version_hex(d, ver);
    mdl_version_hex(dp, pos);
    /* the state digest covers every tier (heads, sums, window, lag marks); lagging_users 0: caught
     * up, so equal digests mean equal states however the tiers' commits fell */
    printf("{\"state_digest\":\"%s\",\"positions_digest\":\"%s\",\"users\":%llu,"
           "\"chunks\":%llu,\"lagging_users\":%llu}\n",
           ver, pos, (unsigned long long)users, (unsigned long long)chunks,
           (unsigned long long)lagging);
    return 0;
}

/* inspect --verify: every record and chunk against its checksum; @return the exit code */
static int inspect_verify(enc_store *st, const char *dir) {
    int rc;
    enc_verify_report vr;
    if ((rc = enc_store_verify(st, verify_line, NULL, &vr))) {
        fprintf(stderr, "trail inspect: %s: %s\n", dir, core_strerror(rc));
        return 1;
    }
    printf("{\"users\":%llu,\"chunks\":%llu,\"damaged_users\":%llu,"
           "\"quarantined_events\":%llu,\"checksums\":%s,\"positions_ok\":%s}\n",
           (unsigned long long)vr.users, (unsigned long long)vr.chunks,
           (unsigned long long)vr.damaged_users, (unsigned long long)vr.quarantined,
           vr.checksums ? "true" : "false", vr.positions_ok ? "true" : "false");
    if (!vr.positions_ok)
        fprintf(stderr,
                "trail inspect: %s: the input positions failed their checksum (a "
                "resumed input would skip or repeat events)\n",
                dir);
    if (!vr.checksums)
        fprintf(stderr,
                "trail inspect: %s was written before checksums: only formats were "
                "checked (its next writer adds them)\n",
                dir);
    return vr.damaged_users || !vr.positions_ok ? 1 : 0;
}

static const core_cmd inspect_cmd = {
    "inspect", "print one user's encoder state, the store's digest, or a check of its checksums",
    enc_cmd_inspect, "Give exactly one of --user, --digest and --verify.\n", NULL};

int enc_cmd_inspect(int argc, char **argv) {
    const char *dir = NULL;
    uint64_t uid = 0;
    int json = 0, have_user = 0, digest = 0, verify = 0;
    const core_opt opts[] = {
        CORE_OPT_NEED("store", &dir, "DIR", "the store"),
        {CORE_OPT_ROW("user", CORE_OPT_U64, &uid, "ID", "print this user's state"), .umin = 0,
         .umax = SCH_ID_MAX, .seen = &have_user, .flags = CORE_OPT_NODEF},
        CORE_OPT_FLG("json", &json, "with --user: as one JSON object"),
        CORE_OPT_FLG("digest", &digest, "print the store's digest"),
        CORE_OPT_FLG("verify", &verify,
                     "check every user's head, sums and window chunks against their checksums;\n"
                     "prints a JSON summary, names each damaged user on stderr, exits 1 if any"),
        CORE_OPT_ENDROW};
    int rc = core_opts_parse(&inspect_cmd, opts, argc, argv);
    if (rc != CORE_OPTS_GO) return rc;
    if (have_user + digest + verify != 1)
        return core_cmd_usage(&inspect_cmd, "give exactly one of --user, --digest and --verify");
    char ver[17];
    enc_store *st = NULL;
    enc_reader *r = NULL;
    enc_user_view u;
    int ret = 1, begun = 0;
    if (open_existing("inspect", dir, 0, &st)) return 1;
    if (digest || verify) {
        ret = digest ? inspect_digest(st, dir) : inspect_verify(st, dir);
        goto out;
    }
    if ((rc = enc_reader_new(st, &r)) || (rc = enc_reader_begin(r))) {
        fprintf(stderr, "trail inspect: %s\n", core_strerror(rc));
        goto out;
    }
    begun = 1;
    if ((rc = enc_reader_user(r, uid, &u))) {
        fprintf(stderr, "trail inspect: user %llu: %s\n", (unsigned long long)uid,
                rc == CORE_ENOTFOUND ? "no state in this store" : core_strerror(rc));
        goto out;
    }
    mdl_version_hex(u.encoding_version, ver);
    core_report o;
    core_report_begin(&o, stdout, json ? CORE_REPORT_JSON_TIGHT : CORE_REPORT_TEXT, "inspect");
    core_report_u64(&o, "user_id", uid);
    core_report_str(&o, "encoding_version", ver);
    core_report_u64(&o, "window_len", u.window_len);
    core_report_u64(&o, "window_max", enc_store_window(st));
    core_report_u64(&o, "n_events", u.n_events);
    core_report_u64(&o, "n_summed", u.n_summed);
    core_report_i64(&o, "last_ts", u.last_ts);
    core_report_i64(&o, "updated_at", u.updated_at);
    core_report_u64(&o, "signatures", u.S);
    core_report_u64(&o, "buckets", u.n_buckets);
    core_report_u64(&o, "dim", u.C);
    core_report_obj(&o, "actions");
    for (int a = 1; a <= SCH_ACTION_MAX; a++)
        if (u.action_cnt[a]) core_report_u64(&o, sch_action_name(a), u.action_cnt[a]);
    core_report_close(&o);
    core_report_arr(&o, "recent"); /* oldest first */
    for (uint32_t i = 0; i < u.recent_len; i++) {
        const sch_behavior *bh = &u.recent[i];
        core_report_obj(&o, NULL);
        core_report_u64(&o, "item_id", bh->item_id);
        core_report_u64(&o, "category_id", bh->category_id);
        core_report_str(&o, "action",
                        sch_action_name(bh->action) ? sch_action_name(bh->action) : "?");
        core_report_i64(&o, "ts", bh->ts);
        core_report_close(&o);
    }
    core_report_close(&o);
    for (int norms = 0; norms < 2; norms++) { /* per signature: each bucket's count, then norm */
        core_report_arr(&o, norms ? "bucket_norms" : "bucket_counts");
        for (uint32_t i = 0; i < u.S; i++) {
            core_report_arr(&o, NULL);
            for (uint32_t k = 0; k < u.n_buckets; k++) {
                const float *x = u.bucket_sum + ((size_t)i * u.n_buckets + k) * u.C;
                double s2 = 0;
                for (uint32_t d = 0; d < u.C && norms; d++)
                    s2 += (double)x[d] * x[d];
                if (norms)
                    core_report_num(&o, NULL, "%.6g", sqrt(s2));
                else
                    core_report_u64(&o, NULL, u.bucket_cnt[i * u.n_buckets + k]);
            }
            core_report_close(&o);
        }
        core_report_close(&o);
    }
    core_report_end(&o);
    ret = 0;
out:
    if (begun) enc_reader_end(r);
    enc_reader_destroy(r);
    enc_store_close(st);
    return ret;
}

/* `encode` is not listed: trail lists it with the Kafka worker's (enc_encode_cmd) */
const core_cmd *const enc_cmds[] = {&enc_import_taobao_cmd, &enc_import_movielens_cmd,
                                    &reencode_cmd,          &inspect_cmd,
                                    &enc_bench_cmd,         NULL};
