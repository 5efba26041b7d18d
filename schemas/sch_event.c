/* sch_event.c: JSON and binary codecs for behavior events, and event-file reading and writing. */
#include "sch_event.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_json.h"
#include "core_util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *action_names[] = {NULL, "click", "cart", "fav", "buy", "rate", "view"};

const char *sch_action_name(int action) {
    return (action >= 1 && action <= SCH_ACTION_MAX) ? action_names[action] : NULL;
}

int sch_action_parse(const char *s, size_t n) {
    for (int a = 1; a <= SCH_ACTION_MAX; a++)
        if (strlen(action_names[a]) == n && memcmp(action_names[a], s, n) == 0) return a;
    if (n == 2 && memcmp(s, "pv", 2) == 0) return SCH_ACTION_CLICK;
    return 0;
}

int sch_event_validate(const sch_event *ev, char *err, size_t err_size) {
    if (!sch_action_name(ev->action)) {
        snprintf(err, err_size, "field 'action': unknown code %u", ev->action);
        return CORE_ERANGE;
    }
    if (ev->user_id > SCH_ID_MAX || ev->item_id > SCH_ID_MAX || ev->category_id > SCH_ID_MAX) {
        snprintf(err, err_size, "an id is above %llu", (unsigned long long)SCH_ID_MAX);
        return CORE_ERANGE;
    }
    if (ev->ts < SCH_TS_MIN || ev->ts > SCH_TS_MAX) {
        snprintf(err, err_size, "field 'ts': %lld is outside [%lld, %lld] (seconds since epoch)",
                 (long long)ev->ts, SCH_TS_MIN, SCH_TS_MAX);
        return CORE_ERANGE;
    }
    if ((ev->flags & SCH_F_LABEL) && ev->label > 1) {
        snprintf(err, err_size, "field 'label': must be 0 or 1");
        return CORE_ERANGE;
    }
    if ((ev->flags & SCH_F_REQUEST) && ev->request_id > SCH_ID_MAX) {
        snprintf(err, err_size, "field 'request_id': %llu is above %llu",
                 (unsigned long long)ev->request_id, (unsigned long long)SCH_ID_MAX);
        return CORE_ERANGE;
    }
    if ((ev->flags & SCH_F_PROB) && !(ev->prob >= 0.f && ev->prob <= 1.f)) {
        snprintf(err, err_size, "field 'prob': must be in [0, 1]");
        return CORE_ERANGE;
    }
    return CORE_OK;
}

uint64_t sch_request_id_hash(const char *s, size_t n) {
    return XXH3_64bits(s, n) & SCH_ID_MAX;
}

// ---------------------------------------------------------------------------------------------
// JSON

static int json_uint(const json_t *v, const char *key, uint64_t max, uint64_t *out, char *err,
                     size_t err_size) {
    if (!json_is_integer(v)) {
        snprintf(err, err_size, "field '%s': expected a non-negative integer, got %s", key,
                 json_is_string(v) ? "a string"
                 : json_is_real(v) ? "a fraction"
                                   : "another type");
        return CORE_EFORMAT;
    }
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max) {
        snprintf(err, err_size, "field '%s': %lld is out of range [0, %llu]", key, (long long)x,
                 (unsigned long long)max);
        return CORE_ERANGE;
    }
    *out = (uint64_t)x;
    return CORE_OK;
}

int sch_event_from_json(sch_event *out, const char *buf, size_t n, char *err, size_t err_size) {
    json_error_t jerr;
    json_t *root = NULL;
    int rc = CORE_EFORMAT;
    unsigned seen = 0; /* bit per required field: user, item, category, action, ts */

    if (n > SCH_MAX_JSON_BYTES) {
        snprintf(err, err_size, "event is %zu bytes, above the %d-byte limit", n,
                 SCH_MAX_JSON_BYTES);
        return CORE_ETOOBIG;
    }
    memset(out, 0, sizeof *out);
    root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, err_size, "%s at column %d: %s",
                 json_error_code(&jerr) == json_error_invalid_utf8 ? "invalid UTF-8"
                                                                   : "invalid JSON",
                 jerr.column, jerr.text);
        return CORE_EFORMAT;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_size, "expected a JSON object");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        uint64_t u;
        if (!strcmp(key, "user_id")) {
            if ((rc = json_uint(v, key, SCH_ID_MAX, &out->user_id, err, err_size))) goto done;
            seen |= 1;
        } else if (!strcmp(key, "item_id")) {
            if ((rc = json_uint(v, key, SCH_ID_MAX, &out->item_id, err, err_size))) goto done;
            seen |= 2;
        } else if (!strcmp(key, "category_id")) {
            if ((rc = json_uint(v, key, SCH_ID_MAX, &out->category_id, err, err_size))) goto done;
            seen |= 4;
        } else if (!strcmp(key, "action")) {
            if (!json_is_string(v)) {
                snprintf(err, err_size, "field 'action': expected a string");
                rc = CORE_EFORMAT;
                goto done;
            }
            int a = sch_action_parse(json_string_value(v), json_string_length(v));
            if (!a) { /* quoted cut between whole characters: the message stays UTF-8 */
                const char *sv = json_string_value(v);
                snprintf(err, err_size,
                         "field 'action': unknown value '%.*s' (click, cart, fav, buy, rate, view)",
                         (int)core_utf8_cut(sv, strlen(sv), 32), sv);
                rc = CORE_ERANGE;
                goto done;
            }
            out->action = (uint8_t)a;
            seen |= 8;
        } else if (!strcmp(key, "ts")) {
            if ((rc = json_uint(v, key, (uint64_t)SCH_TS_MAX, &u, err, err_size))) goto done;
            out->ts = (int64_t)u;
            seen |= 16;
        } else if (!strcmp(key, "label")) {
            if (json_is_boolean(v)) {
                out->label = json_is_true(v);
            } else {
                if ((rc = json_uint(v, key, 1, &u, err, err_size))) goto done;
                out->label = (uint8_t)u;
            }
            out->flags |= SCH_F_LABEL;
        } else if (!strcmp(key, "request_id")) {
            if (json_is_string(v)) {
                out->request_id = sch_request_id_hash(json_string_value(v), json_string_length(v));
            } else if ((rc = json_uint(v, key, SCH_ID_MAX, &out->request_id, err, err_size))) {
                goto done;
            }
            out->flags |= SCH_F_REQUEST;
        } else if (!strcmp(key, "prob")) {
            if (!json_is_number(v)) {
                snprintf(err, err_size, "field 'prob': expected a number");
                rc = CORE_EFORMAT;
                goto done;
            }
            double p = json_number_value(v);
            if (!(p >= 0.0 && p <= 1.0)) {
                snprintf(err, err_size, "field 'prob': %g is outside [0, 1]", p);
                rc = CORE_ERANGE;
                goto done;
            }
            out->prob = (float)p;
            out->flags |= SCH_F_PROB;
        } else if (!strcmp(key, "v")) {
            if ((rc = json_uint(v, key, 255, &u, err, err_size))) goto done;
            if (u != SCH_EVENT_VERSION) {
                snprintf(err, err_size,
                         "field 'v': schema version %llu is not supported (this build reads %d)",
                         (unsigned long long)u, SCH_EVENT_VERSION);
                rc = CORE_EVERSION;
                goto done;
            }
        } else {
            snprintf(err, err_size, "unknown field '%.*s'",
                     (int)core_utf8_cut(key, strlen(key), 40), key);
            rc = CORE_EFORMAT;
            goto done;
        }
    }
    static const char *req[] = {"user_id", "item_id", "category_id", "action", "ts"};
    for (int i = 0; i < 5; i++) {
        if (!(seen & (1u << i))) {
            snprintf(err, err_size, "missing field '%s'", req[i]);
            rc = CORE_EFORMAT;
            goto done;
        }
    }
    rc = sch_event_validate(out, err, err_size);
done:
    json_decref(root);
    return rc;
}

/* prob with the fewest significant digits (6 to 9) that read back, through the decoder's own
 * path (strtod, then float), as the same float: 6 keeps the usual values short ("0.31"), 9 always
 * suffices for a float. */
static int prob_str(float p, char *buf, size_t cap) {
    int n = 0;
    for (int digits = 6; digits <= 9; digits++) {
        n = snprintf(buf, cap, "%.*g", digits, (double)p);
        if (n < 0 || (size_t)n >= cap) return CORE_ETOOBIG;
        if ((float)strtod(buf, NULL) == p) break;
    }
    return n;
}

int sch_event_to_json(const sch_event *ev, char *buf, size_t cap) {
    char why[160];
    if (sch_event_validate(ev, why, sizeof why)) return CORE_ERANGE;
    int n = snprintf(
        buf, cap,
        "{\"user_id\":%llu,\"item_id\":%llu,\"category_id\":%llu,\"action\":\"%s\",\"ts\":%lld",
        (unsigned long long)ev->user_id, (unsigned long long)ev->item_id,
        (unsigned long long)ev->category_id,
        sch_action_name(ev->action) ? sch_action_name(ev->action) : "click", (long long)ev->ts);
    if (n < 0 || (size_t)n >= cap) return CORE_ETOOBIG;
    size_t len = (size_t)n;
    if (ev->flags & SCH_F_LABEL) {
        n = snprintf(buf + len, cap - len, ",\"label\":%u", ev->label);
        if (n < 0 || (size_t)n >= cap - len) return CORE_ETOOBIG;
        len += (size_t)n;
    }
    if (ev->flags & SCH_F_REQUEST) {
        n = snprintf(buf + len, cap - len, ",\"request_id\":%llu",
                     (unsigned long long)ev->request_id);
        if (n < 0 || (size_t)n >= cap - len) return CORE_ETOOBIG;
        len += (size_t)n;
    }
    if (ev->flags & SCH_F_PROB) {
        char pb[40];
        if (prob_str(ev->prob, pb, sizeof pb) < 0) return CORE_ETOOBIG;
        n = snprintf(buf + len, cap - len, ",\"prob\":%s", pb);
        if (n < 0 || (size_t)n >= cap - len) return CORE_ETOOBIG;
        len += (size_t)n;
    }
    if (len + 2 > cap) return CORE_ETOOBIG;
    buf[len++] = '}';
    buf[len] = 0;
    return (int)len;
}

// ---------------------------------------------------------------------------------------------
// Binary record: see events.md for the byte layout.

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void sch_event_to_bin(const sch_event *ev, uint8_t out[SCH_BIN_RECORD_SIZE]) {
    uint32_t pb;
    memset(out, 0, SCH_BIN_RECORD_SIZE);
    out[0] = SCH_BIN_MAGIC;
    out[1] = SCH_EVENT_VERSION;
    out[2] = ev->action;
    out[3] = (uint8_t)((ev->flags & 7) | ((ev->label & 1) << 3));
    memcpy(&pb, &ev->prob, 4);
    put_u32(out + 4, (ev->flags & SCH_F_PROB) ? pb : 0);
    put_u64(out + 8, ev->user_id);
    put_u64(out + 16, ev->item_id);
    put_u64(out + 24, ev->category_id);
    put_u64(out + 32, (uint64_t)ev->ts);
    put_u64(out + 40, (ev->flags & SCH_F_REQUEST) ? ev->request_id : 0);
    put_u32(out + 48, XXH32(out, 48, 0));
}

int sch_event_from_bin(sch_event *out, const uint8_t *buf, size_t n, char *err, size_t err_size) {
    if (n != SCH_BIN_RECORD_SIZE) {
        snprintf(err, err_size, "binary record is %zu bytes, expected %d", n, SCH_BIN_RECORD_SIZE);
        return CORE_EFORMAT;
    }
    if (buf[0] != SCH_BIN_MAGIC) {
        snprintf(err, err_size, "binary record: bad magic 0x%02x", buf[0]);
        return CORE_EFORMAT;
    }
    if (buf[1] != SCH_EVENT_VERSION) {
        snprintf(err, err_size, "binary record: version %u not supported", buf[1]);
        return CORE_EVERSION;
    }
    if (get_u32(buf + 48) != XXH32(buf, 48, 0)) {
        snprintf(err, err_size, "binary record: checksum mismatch");
        return CORE_ECHECKSUM;
    }
    if (buf[3] & 0xF0) {
        snprintf(err, err_size, "binary record: unknown flag bits 0x%02x", buf[3]);
        return CORE_EFORMAT;
    }
    memset(out, 0, sizeof *out);
    out->action = buf[2];
    out->flags = buf[3] & 7;
    out->label = (out->flags & SCH_F_LABEL) ? (buf[3] >> 3) & 1 : 0;
    uint32_t pb = get_u32(buf + 4);
    memcpy(&out->prob, &pb, 4);
    if (!(out->flags & SCH_F_PROB)) out->prob = 0.f;
    out->user_id = get_u64(buf + 8);
    out->item_id = get_u64(buf + 16);
    out->category_id = get_u64(buf + 24);
    out->ts = (int64_t)get_u64(buf + 32);
    /* bit 63 is cleared: before request ids were held to 63 bits, `trail record --binary` stored
     * a string id's full XXH3-64 here; its low 63 bits are what the JSON decoder keeps for the
     * same string now (sch_request_id_hash) */
    out->request_id = (out->flags & SCH_F_REQUEST) ? get_u64(buf + 40) & SCH_ID_MAX : 0;
    return sch_event_validate(out, err, err_size);
}

int sch_event_decode(sch_event *out, const void *buf, size_t n, char *err, size_t err_size) {
    if (n > 0 && ((const uint8_t *)buf)[0] == SCH_BIN_MAGIC)
        return sch_event_from_bin(out, buf, n, err, err_size);
    return sch_event_from_json(out, buf, n, err, err_size);
}

// ---------------------------------------------------------------------------------------------
// Files

struct sch_reader {
    FILE *f;
    int is_stdin;
    int binary;
    size_t max_line;
    char *buf;       /* line buffer, max_line + 1 bytes */
    uint64_t offset; /* byte offset of the next record */
    uint64_t recno;  /* number of the last record returned */
};

int sch_reader_open(sch_reader **out, const char *path, size_t max_line, char *errstr,
                    size_t errstr_size) {
    sch_reader *r = core_calloc(1, sizeof *r);
    if (!r) return CORE_ENOMEM;
    r->max_line = max_line < 64 ? 64 : max_line;
    r->buf = core_malloc(r->max_line + 1);
    if (!r->buf) goto nomem;
    if (!strcmp(path, "-")) {
        r->f = stdin;
        r->is_stdin = 1;
    } else if (!(r->f = fopen(path, "rb"))) {
        snprintf(errstr, errstr_size, "open %s: %s", path, strerror(errno));
        sch_reader_close(r);
        return CORE_EIO;
    }
    int c = getc(r->f);
    if (c == 'T') {
        char magic[8] = {'T'};
        size_t got = fread(magic + 1, 1, 7, r->f);
        if (got == 7 && memcmp(magic, SCH_BIN_FILE_MAGIC, 8) == 0) {
            r->binary = 1;
            r->offset = 8;
        } else if (r->is_stdin) {
            snprintf(errstr, errstr_size, "%s: starts with 'T' but is not a binary event file",
                     path);
            sch_reader_close(r);
            return CORE_EFORMAT;
        } else {
            rewind(r->f);
        }
    } else if (c != EOF) {
        ungetc(c, r->f);
    }
    *out = r;
    return CORE_OK;
nomem:
    sch_reader_close(r);
    return CORE_ENOMEM;
}

int sch_reader_is_binary(const sch_reader *r) {
    return r->binary;
}
uint64_t sch_reader_offset(const sch_reader *r) {
    return r->offset;
}

int sch_reader_seek(sch_reader *r, uint64_t offset, uint64_t recno) {
    if (r->is_stdin) return CORE_EINVAL;
    if (fseeko(r->f, (off_t)offset, SEEK_SET) != 0) return CORE_EIO;
    r->offset = offset;
    r->recno = recno;
    return CORE_OK;
}

int sch_reader_next(sch_reader *r, const char **rec, size_t *n, uint64_t *recno) {
    if (r->binary) {
        size_t got = fread(r->buf, 1, SCH_BIN_RECORD_SIZE, r->f);
        if (got == 0) return ferror(r->f) ? CORE_EIO : 0;
        *rec = r->buf;
        *n = got;
        *recno = ++r->recno;
        r->offset += got;
        return got == SCH_BIN_RECORD_SIZE ? 1 : CORE_EFORMAT;
    }
    for (;;) {
        size_t len = 0;
        int c, too_long = 0;
        while ((c = getc(r->f)) != EOF) {
            r->offset++;
            if (c == '\n') break;
            if (len < r->max_line)
                r->buf[len++] = (char)c;
            else
                too_long = 1;
        }
        if (c == EOF && len == 0 && !too_long) return ferror(r->f) ? CORE_EIO : 0;
        r->recno++;
        if (len > 0 && r->buf[len - 1] == '\r') len--;
        r->buf[len] = 0;
        *rec = r->buf;
        *n = len;
        *recno = r->recno;
        if (too_long) return CORE_ETOOBIG;
        if (len == 0) continue; /* blank lines are not records */
        return 1;
    }
}

void sch_reader_close(sch_reader *r) {
    if (!r) return;
    if (r->f && !r->is_stdin) fclose(r->f);
    core_free(r->buf);
    core_free(r);
}

struct sch_writer {
    FILE *f;
    int is_stdout;
    int binary;
};

int sch_writer_open(sch_writer **out, const char *path, int binary, char *errstr,
                    size_t errstr_size) {
    sch_writer *w = core_calloc(1, sizeof *w);
    if (!w) return CORE_ENOMEM;
    w->binary = binary;
    if (!strcmp(path, "-")) {
        w->f = stdout;
        w->is_stdout = 1;
    } else if (!(w->f = fopen(path, "wb"))) {
        snprintf(errstr, errstr_size, "create %s: %s", path, strerror(errno));
        core_free(w);
        return CORE_EIO;
    }
    if (binary && fwrite(SCH_BIN_FILE_MAGIC, 1, 8, w->f) != 8) {
        snprintf(errstr, errstr_size, "write %s: %s", path, strerror(errno));
        sch_writer_close(w);
        return CORE_EIO;
    }
    *out = w;
    return CORE_OK;
}

int sch_writer_put(sch_writer *w, const sch_event *ev) {
    char why[160];
    if (sch_event_validate(ev, why, sizeof why)) return CORE_ERANGE; /* readers would reject it */
    if (w->binary) {
        uint8_t rec[SCH_BIN_RECORD_SIZE];
        sch_event_to_bin(ev, rec);
        return fwrite(rec, 1, sizeof rec, w->f) == sizeof rec ? CORE_OK : CORE_EIO;
    }
    char line[320];
    int n = sch_event_to_json(ev, line, sizeof line - 1);
    if (n < 0) return n;
    line[n++] = '\n';
    return fwrite(line, 1, (size_t)n, w->f) == (size_t)n ? CORE_OK : CORE_EIO;
}

int sch_writer_close(sch_writer *w) {
    int rc = CORE_OK;
    if (!w) return CORE_OK;
    if (fflush(w->f) != 0) rc = CORE_EIO;
    if (!w->is_stdout) {
        if (fsync(fileno(w->f)) != 0) rc = CORE_EIO;
        if (fclose(w->f) != 0) rc = CORE_EIO;
    }
    core_free(w);
    return rc;
}
