/* enc_cli.c: the encoder's commands: `trail encode` (file replay), `trail reencode`,
 * `trail inspect`. Importers are in enc_import.c, the benchmark in enc_bench.c.
 *
 * File replay is exactly-once: the input position (byte offset and record number) and the reject
 * file's length are written in the same LMDB transaction as the state the records produced. A
 * resumed run seeks to the stored position and truncates the reject file to the stored length, so
 * neither the state nor the reject file ever holds a record twice.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"
#include "enc_state_int.h"
#include "enc_store.h"
#include "mdl.h"
#include "sch_event.h"
#include "enc_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#define ENC_MAX_LINE (1u << 16) /* longer lines are skipped whole and rejected */

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Length of the UTF-8 sequence at s[0..n) if it is one well-formed character (no overlong form,
 * no surrogate, at most U+10FFFF), else 0. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (c > 0xF4 || !len || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
    return len;
}

/* Write s[0..n) as the body of a JSON string: printable ASCII and well-formed UTF-8 kept as they
 * are, '"' and '\\' escaped, control bytes and bytes that are not well-formed UTF-8 as \u00XX (read
 * as Latin-1), so a reject line is valid JSON (and valid UTF-8) whatever bytes the bad record held,
 * and a record's text reads as it was. */
static void json_bytes(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        size_t len;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else if (c < 0x80)
            fputc(c, f);
        else if ((len = utf8_char(u + i, n - i)) != 0) {
            fwrite(u + i, 1, len, f);
            i += len - 1;
        } else
            fprintf(f, "\\u%04x", c);
    }
}

/* At most max bytes of s[0..n), not ending inside a well-formed UTF-8 character. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t k = max;
    for (size_t back = 0; back < 3 && k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80; back++)
        k--;
    /* s[k] starts the character the cut falls in; keep the cut where it was if that is no
     * well-formed character (invalid bytes are escaped one by one anyway) */
    return k < max && utf8_char((const unsigned char *)s + k, n - k) > max - k ? k : max;
}

/* Open (creating) the reject file and cut it to `keep` bytes: what earlier committed batches wrote.
 */
static FILE *reject_open(const char *path, int64_t keep) {
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return NULL;
    if (ftruncate(fd, keep) != 0 || lseek(fd, keep, SEEK_SET) < 0) {
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) close(fd);
    return f;
}

const core_cmd enc_encode_cmd = {
    "encode", "apply events to the LMDB user state: --input FILE, or --brokers (worker)",
    enc_cmd_encode,
    "exit status: 0 when the input was replayed, even if some records were rejected (they are\n"
    "counted in the summary and kept in the reject file); 1 on an error, or when this run read\n"
    "records and rejected every one of them (wrong format, not events); 2 on a usage error\n",
    NULL};

/* The identity of a file input: XXH3-64 of its bytes before the committed position, kept with
 * that position ("file:PATH#id"). A second handle reads the file as far as the reader has, so the
 * hash always covers exactly the bytes committed. */
typedef struct input_id {
    FILE *f;
    XXH3_state_t *st;
    uint64_t at; /* bytes hashed */
} input_id;

/* hash up to byte `to` (at most the file's length; returns CORE_EIO if it is shorter) */
static int input_id_advance(input_id *id, uint64_t to) {
    char buf[65536];
    while (id->at < to) {
        size_t want = to - id->at < sizeof buf ? (size_t)(to - id->at) : sizeof buf;
        size_t got = fread(buf, 1, want, id->f);
        if (got == 0) return CORE_EIO;
        XXH3_64bits_update(id->st, buf, got);
        id->at += got;
    }
    return CORE_OK;
}

typedef struct enc_counts {
    uint64_t skipped, applied, impressions, rejected, read;
} enc_counts;

/* a resumed file input: the position and reject length committed with the state; the file
 * must still begin with the bytes the state has applied. Errors are printed. */
static int encode_resume(enc_store *st, sch_reader *rd, input_id *iid, const char *source,
                         const char *input, const char *store, int64_t off, int64_t *rejpos,
                         uint64_t *skipped) {
    char key[PATH_MAX + 32];
    int64_t want_id = 0, recno = 0;
    int have_id;
    /* the file must still begin with the bytes the state has applied */
    struct stat isb;
    snprintf(key, sizeof key, "%s#id", source);
    have_id = enc_store_get_offset(st, key, &want_id) == CORE_OK;
    if (fstat(fileno(iid->f), &isb) == 0 && (uint64_t)isb.st_size < (uint64_t)off) {
        fprintf(stderr,
                "trail encode: %s is %lld bytes, but the store %s has applied it up to byte "
                "%lld: the file was replaced or truncated since; refusing to guess which "
                "records are new (encode into a new store, or restore the file)\n",
                input, (long long)isb.st_size, store, (long long)off);
        return CORE_EINVAL;
    }
    if (input_id_advance(iid, (uint64_t)off) != CORE_OK) {
        fprintf(stderr, "trail encode: reading %s: %s\n", input, strerror(errno));
        return CORE_EINVAL;
    }
    if (have_id && (int64_t)XXH3_64bits_digest(iid->st) != want_id) {
        fprintf(stderr,
                "trail encode: %s no longer begins with the %lld bytes the store %s applied "
                "from it (their hash differs): the file was replaced since; refusing to "
                "guess which records are new (encode into a new store, or restore the file)\n",
                input, (long long)off, store);
        return CORE_EINVAL;
    }
    snprintf(key, sizeof key, "%s#rec", source);
    if (enc_store_get_offset(st, key, &recno) != CORE_OK ||
        sch_reader_seek(rd, (uint64_t)off, (uint64_t)recno) != CORE_OK) {
        fprintf(stderr, "trail encode: cannot resume %s at byte %lld\n", input, (long long)off);
        return CORE_EINVAL;
    }
    snprintf(key, sizeof key, "%s#rej", source);
    if (enc_store_get_offset(st, key, rejpos) != CORE_OK) *rejpos = 0;
    *skipped = (uint64_t)recno;
    return CORE_OK;
}

/* one record the reader returned (rc: its status): rejected with its reason into rej, counted
 * as an impression, or applied to b. @return 0, or an error of the batch (printed). */
static int encode_record(enc_batch *b, FILE *rej, int rc, const char *rec, size_t len, uint64_t rn,
                         enc_counts *bc, uint64_t *rej_in_batch) {
    sch_event ev;
    char why[256];
    bc->read++;
    if (rc == CORE_ETOOBIG) {
        snprintf(why, sizeof why, "record longer than %u bytes", ENC_MAX_LINE);
    } else if (rc == CORE_EFORMAT) {
        snprintf(why, sizeof why, "truncated binary record (%zu of %d bytes)", len,
                 SCH_BIN_RECORD_SIZE);
    } else {
        rc = sch_event_decode(&ev, rec, len, why, sizeof why);
    }
    if (rc != 1 && rc != CORE_OK) {
        fprintf(rej, "{\"line\":%llu,\"reason\":\"", (unsigned long long)rn);
        json_bytes(rej, why, strlen(why));
        fprintf(rej, "\",\"record\":\"");
        json_bytes(rej, rec, utf8_cut(rec, len, 200));
        fprintf(rej, "%s\"}\n", len > 200 ? "..." : "");
        bc->rejected++;
        (*rej_in_batch)++;
    } else if (ev.flags & SCH_F_LABEL) {
        bc->impressions++;
    } else if ((rc = enc_batch_apply(b, &ev))) {
        fprintf(stderr, "trail encode: %s\n", core_strerror(rc));
        return rc;
    } else {
        bc->applied++;
    }
    return 0;
}

/* the run's summary on stdout (JSON or lines); only committed batches count */
static void encode_summary(enc_counts n, enc_store *st, const char *input, const char *rpath,
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

/* commit the batch b with the input position, record count, reject length and identity it
 * covers; b is consumed (committed, or aborted on an error). @return 0, or 1 after printing
 * why. */
static int encode_commit(enc_batch *b, sch_reader *rd, FILE *rej, const char *rpath, int durable,
                         int rej_in_batch, const char *source, uint64_t records,
                         uint64_t batch_read, input_id *iid, const char *input, const char *store) {
    char key[PATH_MAX + 32];
    int rc;
    if (fflush(rej) != 0 || (rej_in_batch && durable && fsync(fileno(rej)) != 0)) {
        fprintf(stderr, "trail encode: writing %s: %s\n", rpath, strerror(errno));
        goto abort;
    }
    snprintf(key, sizeof key, "%s#rec", source);
    if ((rc = enc_batch_set_offset(b, source, (int64_t)sch_reader_offset(rd))) ||
        (rc = enc_batch_set_offset(b, key, (int64_t)records))) {
        fprintf(stderr, "trail encode: %s\n", core_strerror(rc));
        goto abort;
    }
    snprintf(key, sizeof key, "%s#rej", source);
    if ((rc = enc_batch_set_offset(b, key, (int64_t)ftello(rej)))) goto abort;
    if (iid->f) { /* the identity of the bytes this commit covers */
        if (input_id_advance(iid, sch_reader_offset(rd)) != CORE_OK) {
            fprintf(stderr,
                    "trail encode: reading %s: the file changed while it was "
                    "read\n",
                    input);
            goto abort;
        }
        snprintf(key, sizeof key, "%s#id", source);
        if ((rc = enc_batch_set_offset(b, key, (int64_t)XXH3_64bits_digest(iid->st)))) goto abort;
    }
    rc = enc_batch_commit(b);
    if (rc) {
        char why[160] = "";
        struct statvfs fs; /* a full disk reaches here as LMDB's write error */
        if (statvfs(store, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < (64u << 20))
            snprintf(why, sizeof why,
                     "; no space left on the device of %s (%llu bytes "
                     "free)",
                     store, (unsigned long long)fs.f_bavail * fs.f_frsize);
        fprintf(stderr,
                "trail encode: commit to %s failed: %s%s%s (state unchanged since "
                "the last commit; the %llu records of this batch were not applied "
                "and a rerun resumes before them)\n",
                store, core_strerror(rc), rc == CORE_EFULL ? "; raise --map-max" : "", why,
                (unsigned long long)batch_read);
        return 1;
    }
    return 0;
abort:
    enc_batch_abort(b);
    return 1;
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

    char err[1024], source[PATH_MAX + 16], rpath[PATH_MAX + 32];
    mdl_model *m = NULL;
    enc_store *st = NULL;
    sch_reader *rd = NULL;
    FILE *rej = NULL;
    enc_batch *b = NULL;
    enc_counts n = {0};
    int ret = 1, complete = 0;
    int64_t off = 0, rejpos = 0, t0 = core_now_ns();
    input_id iid = {0};  /* file inputs: the hash of the bytes applied */
    enc_counts bc = {0}; /* the batch being built: folded into n when it commits */
    /* known from the arguments alone: the summary at out names it even when opening fails */
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
    if ((rc = enc_store_open(&st, &conf, err, sizeof err)) ||
        (rc = enc_store_bind_model(st, m, err, sizeof err))) {
        fprintf(stderr, "trail encode: %s\n", err);
        goto out;
    }
    if (mdl_window_mismatch(&m->cfg, enc_store_window(st), err, sizeof err))
        fprintf(stderr, "trail encode: warning: model %s: %s\n", model_path, err);
    if (strcmp(input, "-") == 0) {
        snprintf(source, sizeof source, "file:-");
    } else {
        char real[PATH_MAX];
        if (!realpath(input, real)) {
            fprintf(stderr, "trail encode: --input %s: %s\n", input, strerror(errno));
            goto out;
        }
        snprintf(source, sizeof source, "file:%s", real);
    }
    if ((rc = sch_reader_open(&rd, input, ENC_MAX_LINE, err, sizeof err))) {
        fprintf(stderr, "trail encode: %s\n", err);
        goto out;
    }
    if (strcmp(input, "-") != 0) {
        if (!(iid.f = fopen(input, "rb")) || !(iid.st = XXH3_createState())) {
            fprintf(stderr, "trail encode: --input %s: %s\n", input, strerror(errno));
            goto out;
        }
        XXH3_64bits_reset(iid.st);
    }
    /* resume: the position and reject length committed with the state */
    if (strcmp(input, "-") != 0 && enc_store_get_offset(st, source, &off) == CORE_OK &&
        encode_resume(st, rd, &iid, source, input, conf.path, off, &rejpos, &n.skipped))
        goto out;
    if (!(rej = reject_open(rpath, rejpos))) {
        fprintf(stderr, "trail encode: reject file %s: %s\n", rpath, strerror(errno));
        goto out;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);

    uint64_t in_batch = 0, rej_in_batch = 0;
    int eof = 0;
    while (!eof) {
        if (!b && (rc = enc_batch_begin(st, &b))) {
            fprintf(stderr, "trail encode: %s\n", core_strerror(rc));
            goto out;
        }
        const char *rec;
        size_t len;
        uint64_t rn;
        rc = sch_reader_next(rd, &rec, &len, &rn);
        if (rc == 0) {
            eof = 1;
        } else if (rc == CORE_EIO) {
            fprintf(stderr, "trail encode: reading %s: %s\n", input, strerror(errno));
            goto out;
        } else {
            in_batch++;
            if (encode_record(b, rej, rc, rec, len, rn, &bc, &rej_in_batch)) goto out;
        }
        if (in_batch >= batch || eof || (g_stop && in_batch)) {
            rc = encode_commit(b, rd, rej, rpath, conf.durable, rej_in_batch != 0, source,
                               n.skipped + n.read + bc.read, bc.read, &iid, input, conf.path);
            b = NULL;
            if (rc) goto out;
            /* only committed records count in the summary */
            n.read += bc.read, n.applied += bc.applied, n.impressions += bc.impressions;
            n.rejected += bc.rejected;
            bc = (enc_counts){0};
            in_batch = rej_in_batch = 0;
        }
        if (g_stop) break;
    }
    ret = 0;
    /* nothing usable: a CSV given as events, random bytes. The rejects are committed (a rerun
     * skips them), but the run failed at what it was for, so it must not look like success. */
    complete = 1;
    if (n.read > 0 && n.rejected == n.read) ret = 1;
out:
    if (b) enc_batch_abort(b);
    if (iid.f) fclose(iid.f);
    if (iid.st) XXH3_freeState(iid.st);
    encode_summary(n, st, input, rpath, json, complete, t0);
    if (rej) fclose(rej);
    sch_reader_close(rd);
    enc_store_close(st);
    mdl_model_destroy(m);
    return ret;
}

// ---------------------------------------------------------------------------------------------
// reencode

static int store_exists(const char *dir) {
    char p[PATH_MAX + 16];
    struct stat sb;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    return stat(p, &sb) == 0;
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
    if (!store_exists(dir)) {
        fprintf(stderr, "trail reencode: no store at %s\n", dir);
        return 1;
    }
    char err[1024], was[17], now[17];
    mdl_model *m = NULL;
    enc_store *st = NULL;
    enc_store_conf conf;
    uint64_t users = 0;
    int ret = 1;
    enc_store_conf_default(&conf);
    conf.path = dir;
    conf.window = conf.recent = 0;
    conf.writer = 1; /* reencode writes: refused while another writer holds the store */
    if (mdl_model_load(&m, model_path, err, sizeof err) ||
        enc_store_open(&st, &conf, err, sizeof err)) {
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
    if (!store_exists(dir)) {
        fprintf(stderr, "trail inspect: no store at %s\n", dir);
        return 1;
    }
    char err[1024], ver[17];
    enc_store *st = NULL;
    enc_reader *r = NULL;
    enc_store_conf conf;
    enc_user_view u;
    int ret = 1, begun = 0;
    enc_store_conf_default(&conf);
    conf.path = dir;
    conf.window = conf.recent = 0;
    conf.must_exist = 1;
    if (enc_store_open(&st, &conf, err, sizeof err)) {
        fprintf(stderr, "trail inspect: %s\n", err);
        goto out;
    }
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
    if (json) {
        printf("{\"user_id\":%llu,\"encoding_version\":\"%s\",\"window_len\":%u,\"window_max\":%u,"
               "\"n_events\":%llu,\"n_summed\":%llu,\"last_ts\":%lld,\"updated_at\":%lld,"
               "\"signatures\":%u,\"buckets\":%u,\"dim\":%u,\"actions\":{",
               (unsigned long long)uid, ver, u.window_len, enc_store_window(st),
               (unsigned long long)u.n_events, (unsigned long long)u.n_summed, (long long)u.last_ts,
               (long long)u.updated_at, u.S, u.n_buckets, u.C);
        for (int a = 1, first = 1; a <= SCH_ACTION_MAX; a++) {
            if (!u.action_cnt[a]) continue;
            printf("%s\"%s\":%llu", first ? "" : ",", sch_action_name(a),
                   (unsigned long long)u.action_cnt[a]);
            first = 0;
        }
        printf("},\"recent\":[");
        for (uint32_t i = 0; i < u.recent_len; i++) {
            const sch_behavior *bh = &u.recent[i];
            printf(
                "%s{\"item_id\":%llu,\"category_id\":%llu,\"action\":\"%s\",\"ts\":%lld}",
                i ? "," : "", (unsigned long long)bh->item_id, (unsigned long long)bh->category_id,
                sch_action_name(bh->action) ? sch_action_name(bh->action) : "?", (long long)bh->ts);
        }
        printf("],\"bucket_counts\":[");
        for (uint32_t i = 0; i < u.S; i++) {
            printf("%s[", i ? "," : "");
            for (uint32_t k = 0; k < u.n_buckets; k++)
                printf("%s%u", k ? "," : "", u.bucket_cnt[i * u.n_buckets + k]);
            printf("]");
        }
        printf("],\"bucket_norms\":[");
        for (uint32_t i = 0; i < u.S; i++) {
            printf("%s[", i ? "," : "");
            for (uint32_t k = 0; k < u.n_buckets; k++) {
                const float *x = u.bucket_sum + ((size_t)i * u.n_buckets + k) * u.C;
                double s2 = 0;
                for (uint32_t d = 0; d < u.C; d++)
                    s2 += (double)x[d] * x[d];
                printf("%s%.6g", k ? "," : "", sqrt(s2));
            }
            printf("]");
        }
        printf("]}\n");
    } else {
        printf(
            "user %llu\n  encoding version %s (S=%u, %u buckets, C=%u)\n  window %u of %u "
            "behaviors, %llu ever applied, the buckets hold the first %llu\n  last event ts %lld, "
            "updated at %lld (wall clock)\n  actions:",
            (unsigned long long)uid, ver, u.S, u.n_buckets, u.C, u.window_len, enc_store_window(st),
            (unsigned long long)u.n_events, (unsigned long long)u.n_summed, (long long)u.last_ts,
            (long long)u.updated_at);
        for (int a = 1; a <= SCH_ACTION_MAX; a++)
            if (u.action_cnt[a])
                printf(" %s=%llu", sch_action_name(a), (unsigned long long)u.action_cnt[a]);
        printf("\n  recent (oldest first):\n");
        for (uint32_t i = 0; i < u.recent_len; i++)
            printf("    %lld %-5s item %llu category %llu\n", (long long)u.recent[i].ts,
                   sch_action_name(u.recent[i].action) ? sch_action_name(u.recent[i].action) : "?",
                   (unsigned long long)u.recent[i].item_id,
                   (unsigned long long)u.recent[i].category_id);
        printf("  buckets (count / norm) per signature:\n");
        for (uint32_t i = 0; i < u.S; i++) {
            printf("    s%-3u", i);
            for (uint32_t k = 0; k < u.n_buckets; k++) {
                const float *x = u.bucket_sum + ((size_t)i * u.n_buckets + k) * u.C;
                double s2 = 0;
                for (uint32_t d = 0; d < u.C; d++)
                    s2 += (double)x[d] * x[d];
                printf(" %u/%.3g", u.bucket_cnt[i * u.n_buckets + k], sqrt(s2));
            }
            printf("\n");
        }
    }
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
