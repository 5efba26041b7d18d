/* enc_replay.c: the file replay behind `trail encode --input`: an event file into the store,
 * exactly once.
 *
 * The input position (byte offset and record number) and the reject file's length are written in
 * the same LMDB transaction as the state the records produced. A resumed run seeks to the stored
 * position and truncates the reject file to the stored length, so neither the state nor the reject
 * file ever holds a record twice.
 */
#include "enc_replay.h"
#include "core_alloc.h"
#include "core_err.h"
#include "core_json.h"
#include "sch_event.h"
#include "enc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#define ENC_MAX_LINE (1u << 16) /* longer lines are skipped whole and rejected */

/* Open (creating) the reject file and cut it to `keep` bytes: what earlier committed batches
 * wrote. */
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

/* One replay. The identity of a file input is the XXH3-64 of its bytes before the committed
 * position, kept with that position ("file:PATH#id"); a second handle (idf) reads the file as far
 * as the reader has, so the hash always covers exactly the bytes committed. */
typedef struct replay {
    const enc_replay_conf *c;
    enc_store *st;
    sch_reader *rd;
    FILE *rej, *idf;
    XXH3_state_t *ids;
    uint64_t id_at; /* bytes hashed */
    char source[PATH_MAX + 16], key[PATH_MAX + 32];
    char *err;
    size_t err_size;
} replay;

/* source's key with a suffix ("#rec": records, "#rej": reject length, "#id": identity) */
static const char *key(replay *r, const char *suffix) {
    snprintf(r->key, sizeof r->key, "%s%s", r->source, suffix);
    return r->key;
}

/* hash up to byte `to` (at most the file's length; returns CORE_EIO if it is shorter) */
static int id_advance(replay *r, uint64_t to) {
    char buf[65536];
    while (r->id_at < to) {
        size_t want = to - r->id_at < sizeof buf ? (size_t)(to - r->id_at) : sizeof buf;
        size_t got = fread(buf, 1, want, r->idf);
        if (got == 0) return CORE_EIO;
        XXH3_64bits_update(r->ids, buf, got);
        r->id_at += got;
    }
    return CORE_OK;
}

/* a resumed file input at the position off committed with the state: the file must still begin
 * with the bytes the state has applied. */
static int replay_resume(replay *r, int64_t off, int64_t *rejpos, uint64_t *skipped) {
    const char *input = r->c->input, *store = r->c->store;
    int64_t want_id = 0, recno = 0;
    int have_id = enc_store_get_offset(r->st, key(r, "#id"), &want_id) == CORE_OK;
    struct stat isb;
    if (fstat(fileno(r->idf), &isb) == 0 && (uint64_t)isb.st_size < (uint64_t)off)
        return snprintf(r->err, r->err_size,
                        "%s is %lld bytes, but the store %s has applied it up to byte %lld: the "
                        "file was replaced or truncated since; refusing to guess which records "
                        "are new (encode into a new store, or restore the file)",
                        input, (long long)isb.st_size, store, (long long)off),
               CORE_EINVAL;
    if (id_advance(r, (uint64_t)off) != CORE_OK)
        return snprintf(r->err, r->err_size, "reading %s: %s", input, strerror(errno)), CORE_EINVAL;
    if (have_id && (int64_t)XXH3_64bits_digest(r->ids) != want_id)
        return snprintf(r->err, r->err_size,
                        "%s no longer begins with the %lld bytes the store %s applied from it "
                        "(their hash differs): the file was replaced since; refusing to guess "
                        "which records are new (encode into a new store, or restore the file)",
                        input, (long long)off, store),
               CORE_EINVAL;
    if (enc_store_get_offset(r->st, key(r, "#rec"), &recno) != CORE_OK ||
        sch_reader_seek(r->rd, (uint64_t)off, (uint64_t)recno) != CORE_OK)
        return snprintf(r->err, r->err_size, "cannot resume %s at byte %lld", input,
                        (long long)off),
               CORE_EINVAL;
    if (enc_store_get_offset(r->st, key(r, "#rej"), rejpos) != CORE_OK) *rejpos = 0;
    *skipped = (uint64_t)recno;
    return CORE_OK;
}

/* one record the reader returned (rc: its status): rejected with its reason into the reject
 * file, counted as an impression, or applied to b. @return 0, or an error of the batch. */
static int replay_record(replay *r, enc_batch *b, int rc, const char *rec, size_t len, uint64_t rn,
                         enc_replay_counts *bc) {
    sch_event ev;
    char why[256];
    bc->read++;
    if (rc == CORE_ETOOBIG)
        snprintf(why, sizeof why, "record longer than %u bytes", ENC_MAX_LINE);
    else if (rc == CORE_EFORMAT)
        snprintf(why, sizeof why, "truncated binary record (%zu of %d bytes)", len,
                 SCH_BIN_RECORD_SIZE);
    else
        rc = sch_event_decode(&ev, rec, len, why, sizeof why);
    if (rc != 1 && rc != CORE_OK) {
        fprintf(r->rej, "{\"line\":%llu,\"reason\":\"", (unsigned long long)rn);
        core_json_write(r->rej, why, strlen(why));
        fprintf(r->rej, "\",\"record\":\"");
        core_json_write(r->rej, rec, core_utf8_cut(rec, len, 200));
        fprintf(r->rej, "%s\"}\n", len > 200 ? "..." : "");
        bc->rejected++;
    } else if (ev.flags & SCH_F_LABEL) {
        bc->impressions++;
    } else if ((rc = enc_batch_apply(b, &ev))) {
        snprintf(r->err, r->err_size, "%s", core_strerror(rc));
        return rc;
    } else {
        bc->applied++;
    }
    return 0;
}

/* commit the batch b with the input position, record count, reject length and identity it
 * covers; b is consumed (committed, or aborted on an error). bc: the batch's counts. */
static int replay_commit(replay *r, enc_batch *b, uint64_t records, const enc_replay_counts *bc) {
    const char *store = r->c->store;
    int rc = CORE_EIO;
    if (fflush(r->rej) != 0 || (bc->rejected && r->c->durable && fsync(fileno(r->rej)) != 0)) {
        snprintf(r->err, r->err_size, "writing %s: %s", r->c->reject, strerror(errno));
        goto abort;
    }
    if ((rc = enc_batch_set_offset(b, r->source, (int64_t)sch_reader_offset(r->rd))) ||
        (rc = enc_batch_set_offset(b, key(r, "#rec"), (int64_t)records)) ||
        (rc = enc_batch_set_offset(b, key(r, "#rej"), (int64_t)ftello(r->rej)))) {
        snprintf(r->err, r->err_size, "%s", core_strerror(rc));
        goto abort;
    }
    if (r->idf) { /* the identity of the bytes this commit covers */
        if (id_advance(r, sch_reader_offset(r->rd)) != CORE_OK) {
            snprintf(r->err, r->err_size, "reading %s: the file changed while it was read",
                     r->c->input);
            goto abort;
        }
        if ((rc = enc_batch_set_offset(b, key(r, "#id"), (int64_t)XXH3_64bits_digest(r->ids)))) {
            snprintf(r->err, r->err_size, "%s", core_strerror(rc));
            goto abort;
        }
    }
    if (!(rc = enc_batch_commit(b))) return 0;
    char why[160] = "";
    struct statvfs fs; /* a full disk reaches here as LMDB's write error */
    if (statvfs(store, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < (64u << 20))
        snprintf(why, sizeof why, "; no space left on the device of %s (%llu bytes free)", store,
                 (unsigned long long)fs.f_bavail * fs.f_frsize);
    snprintf(r->err, r->err_size,
             "commit to %s failed: %s%s%s (state unchanged since the last commit; the %llu "
             "records of this batch were not applied and a rerun resumes before them)",
             store, core_strerror(rc), rc == CORE_EFULL ? "; raise --map-max" : "", why,
             (unsigned long long)bc->read);
    return rc;
abort:
    enc_batch_abort(b);
    return rc ? rc : CORE_EIO;
}

/* the record loop: batches of c->batch records, each committed with its position */
static int replay_loop(replay *r, enc_replay_counts *n) {
    enc_batch *b = NULL;
    enc_replay_counts bc = {0}; /* the batch being built: folded into n when it commits */
    uint64_t in_batch = 0;
    int eof = 0, rc = CORE_OK;
    while (!eof) {
        if (!b && (rc = enc_batch_begin(r->st, &b))) {
            snprintf(r->err, r->err_size, "%s", core_strerror(rc));
            break;
        }
        const char *rec;
        size_t len;
        uint64_t rn;
        rc = sch_reader_next(r->rd, &rec, &len, &rn);
        if (rc == 0) {
            eof = 1;
        } else if (rc == CORE_EIO) {
            snprintf(r->err, r->err_size, "reading %s: %s", r->c->input, strerror(errno));
            break;
        } else {
            in_batch++;
            if ((rc = replay_record(r, b, rc, rec, len, rn, &bc))) break;
        }
        int stop = r->c->stop && *r->c->stop;
        if (in_batch >= r->c->batch || eof || (stop && in_batch)) {
            rc = replay_commit(r, b, n->skipped + n->read + bc.read, &bc);
            b = NULL;
            if (rc) break;
            /* only committed records count */
            n->read += bc.read, n->applied += bc.applied, n->impressions += bc.impressions;
            n->rejected += bc.rejected;
            bc = (enc_replay_counts){0};
            in_batch = 0;
        }
        if (stop) break;
    }
    if (b) enc_batch_abort(b);
    return rc;
}

int enc_replay(enc_store *st, const enc_replay_conf *c, enc_replay_counts *n, char *err,
               size_t err_size) {
    replay r = {.c = c, .st = st, .err = err, .err_size = err_size};
    int64_t off = 0, rejpos = 0;
    int rc = CORE_EINVAL, file = strcmp(c->input, "-") != 0;
    char real[PATH_MAX];
    memset(n, 0, sizeof *n);
    if (file && !realpath(c->input, real)) {
        snprintf(err, err_size, "--input %s: %s", c->input, strerror(errno));
        return rc;
    }
    snprintf(r.source, sizeof r.source, "file:%s", file ? real : "-");
    if (sch_reader_open(&r.rd, c->input, ENC_MAX_LINE, err, err_size)) goto out;
    if (file && (!(r.idf = fopen(c->input, "rb")) || !(r.ids = XXH3_createState()))) {
        snprintf(err, err_size, "--input %s: %s", c->input, strerror(errno));
        goto out;
    }
    if (r.ids) XXH3_64bits_reset(r.ids);
    /* resume: the position and reject length committed with the state */
    if (file && enc_store_get_offset(st, r.source, &off) == CORE_OK &&
        replay_resume(&r, off, &rejpos, &n->skipped))
        goto out;
    if (!(r.rej = reject_open(c->reject, rejpos))) {
        snprintf(err, err_size, "reject file %s: %s", c->reject, strerror(errno));
        goto out;
    }
    rc = replay_loop(&r, n);
out:
    if (r.idf) fclose(r.idf);
    if (r.ids) XXH3_freeState(r.ids);
    if (r.rej) fclose(r.rej);
    sch_reader_close(r.rd);
    return rc;
}
