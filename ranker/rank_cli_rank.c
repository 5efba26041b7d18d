/* rank_cli_rank.c: `trail rank`, score candidates for one user from an encoder store.
 *
 * The user's state is read zero-copy inside one short LMDB read transaction (enc_reader_*) and
 * scored with rank_score before the transaction ends. A model whose encoding_version differs from
 * the store's buckets is refused: its embeddings would not match the sums the store holds.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"
#include "enc_store.h"
#include "mdl.h"
#include "rank_cli.h"
#include "rank_isa.h"
#include "rank_request.h"
#include "rank_score.h"
#include "rank_serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct cand_list {
    uint64_t *item, *cat;
    uint32_t n;
    size_t cap;
} cand_list;

/* Read every candidate line; blank lines are skipped. A bad line's message names its file, line
 * and column. */
static int read_candidates(cand_list *cl, const char *path, char *err, size_t cap) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    char *line = NULL;
    rank_req_error pe;
    size_t lcap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = f ? CORE_OK : CORE_EIO;
    while (f && (len = getline(&line, &lcap, f)) != -1) {
        lineno++;
        if (!line[strspn(line, " \t\r\n")]) continue;
        size_t ci = cl->cap, cc = cl->cap; /* item and cat grow together */
        if (core_grow(&cl->item, &ci, cl->n + 1, sizeof *cl->item, 1024) ||
            core_grow(&cl->cat, &cc, cl->n + 1, sizeof *cl->cat, 1024)) {
            snprintf(err, cap, "out of memory reading candidates");
            rc = CORE_ENOMEM;
            break;
        }
        cl->cap = cc;
        rc = rank_candidate_line_parse(line, (size_t)len, &cl->item[cl->n], &cl->cat[cl->n], &pe);
        if (rc) {
            snprintf(err, cap, "%s:%llu:%u: %s", f == stdin ? "<stdin>" : path,
                     (unsigned long long)lineno, pe.col, pe.message);
            break;
        }
        cl->n++;
    }
    if (!f || (!rc && ferror(f))) {
        snprintf(err, cap, "%s candidates %s: %s", f ? "reading" : "cannot open", path,
                 strerror(errno));
        rc = CORE_EIO;
    }
    free(line); /* allocated by getline */
    if (f && f != stdin) fclose(f);
    return rc;
}

const core_cmd rank_rank_cmd = {
    "rank", "score candidates for one user from an encoder store", rank_cmd_rank,
    "Prints one click probability per candidate, in input order. A candidate line is\n"
    "item_id,category_id or {\"item_id\": 1, \"category_id\": 2}; an unknown user scores with\n"
    "an empty history.\n",
    NULL};

int rank_cmd_rank(int argc, char **argv) {
    const char *model = NULL, *store = NULL, *cands = NULL;
    uint64_t user = 0;
    int64_t ts = core_wall_s();
    int json = 0, rc, ret = 1;
    if ((rc = rank_cli_isa_init(&rank_rank_cmd))) return rc;
    const core_opt opts[] = {
        CORE_OPT_NEED("model", &model, "M", "the model file"),
        CORE_OPT_NEED("store", &store, "DIR", "the encoder's LMDB store"),
        {CORE_OPT_ROW("user", CORE_OPT_U64, &user, "ID", "the user to score for"), .umin = 0,
         .umax = SCH_ID_MAX, .flags = CORE_OPT_REQUIRED},
        {CORE_OPT_ROW("ts", CORE_OPT_I64, &ts, "T", "the request time in seconds"),
         .imin = SCH_TS_MIN, .imax = SCH_TS_MAX, .def = "now"},
        CORE_OPT_NEED("candidates", &cands, "FILE|-", "one candidate per line"),
        CORE_OPT_JSON(&json),
        RANK_OPT_ISA,
        CORE_OPT_ENDROW};
    if ((rc = core_opts_parse(&rank_rank_cmd, opts, argc, argv)) != CORE_OPTS_GO) return rc;

    char err[512] = "", wmsg[256];
    mdl_model *m = NULL;
    enc_store *st = NULL;
    enc_reader *rd = NULL;
    rank_scratch *sc = NULL;
    cand_list cl = {0};
    sch_behavior *window = NULL;
    float *out = NULL;
    int in_txn = 0;
    struct stat sb;
    enc_store_conf conf;
    enc_store_conf_default(&conf);
    conf.path = store;
    conf.window = 0; /* the store's own sizes */
    conf.recent = 0;
    conf.must_exist = 1; /* a mistyped path is an error, not an empty store */
    rc = CORE_EIO;
    if (stat(store, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, sizeof err, "store %s is not a directory", store);
        goto done;
    }
    if ((rc = mdl_model_load(&m, model, err, sizeof err)) ||
        (rc = read_candidates(&cl, cands, err, sizeof err)) ||
        (rc = enc_store_open(&st, &conf, err, sizeof err)))
        goto done;
    uint64_t sv = enc_store_encoding_version(st);
    if (mdl_reads_buckets(&m->cfg) && sv && sv != m->encoding_version) {
        char a[17], b[17];
        mdl_version_hex(m->encoding_version, a);
        mdl_version_hex(sv, b);
        snprintf(err, sizeof err,
                 "model %s has encoding_version %s but the store %s holds buckets of %s: "
                 "reencode the store with this model (trail reencode) first",
                 model, a, store, b);
        rc = CORE_EMISMATCH;
        goto done;
    }
    if (mdl_window_mismatch(&m->cfg, enc_store_window(st), wmsg, sizeof wmsg))
        fprintf(stderr, "trail: rank: warning: model %s: %s\n", model, wmsg);
    uint32_t wmax = mdl_reads_window(&m->cfg) ? enc_store_window(st) : 0;
    if ((rc = rank_scratch_new(&sc, m, cl.n ? cl.n : 1, wmax))) goto done;
    if ((rc = enc_reader_new(st, &rd))) goto done;
    out = core_malloc((cl.n ? cl.n : 1) * sizeof *out);
    window = wmax ? core_malloc(wmax * sizeof *window) : NULL;
    rc = CORE_ENOMEM;
    if (!out || (wmax && !window)) goto done;

    /* one short read transaction: view, score, end */
    if ((rc = enc_reader_begin(rd))) goto done;
    in_txn = 1;
    enc_user_view v;
    rank_history h = {.now_ts = ts};
    int known = 0;
    rc = enc_reader_user(rd, user, &v);
    if (rc == CORE_OK) {
        known = 1;
        if ((rc = rank_history_from_view(&h, &v, m, user, err, sizeof err))) goto done;
        if (wmax) {
            uint32_t nw = 0;
            if ((rc = enc_reader_window(rd, user, window, wmax, &nw))) goto done;
            h.window = window;
            h.T = nw;
        }
    } else if (rc != CORE_ENOTFOUND) {
        snprintf(err, sizeof err, "reading user %llu: %s", (unsigned long long)user,
                 core_strerror(rc));
        goto done;
    }
    rc = rank_score(out, sc, m, &h, cl.item, cl.cat, cl.n);
    enc_reader_end(rd);
    in_txn = 0;
    if (rc) goto done;

    if (json) {
        char ver[17];
        mdl_version_hex(m->model_version, ver);
        printf("{\"model_version\": \"%s\", \"user_id\": %llu, \"known_user\": %s, \"ts\": %lld, "
               "\"scores\": [",
               ver, (unsigned long long)user, known ? "true" : "false", (long long)ts);
        for (uint32_t i = 0; i < cl.n; i++)
            printf("%s%.9g", i ? ", " : "", out[i]);
        printf("]}\n");
    } else {
        for (uint32_t i = 0; i < cl.n; i++)
            printf("%.9g\n", out[i]);
    }
    ret = fflush(stdout) == 0 ? 0 : 1;
    if (ret) snprintf(err, sizeof err, "writing the scores: %s", strerror(errno));
done:
    if (ret) fprintf(stderr, "trail: rank: %s\n", err[0] ? err : core_strerror(rc));
    if (in_txn) enc_reader_end(rd);
    enc_reader_destroy(rd);
    enc_store_close(st);
    rank_scratch_destroy(sc);
    mdl_model_destroy(m);
    core_free(cl.item);
    core_free(cl.cat);
    core_free(window);
    core_free(out);
    return ret;
}
