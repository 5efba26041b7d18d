/* sch_event.h: the behavior event and labeled impression, and their two wire encodings.
 *
 * One C struct, two encodings that decode into it: JSON (the default, one object per line or per
 * Kafka message) and a fixed 52-byte little-endian binary record. events.md is the specification;
 * this file implements it and does nothing else (no I/O beyond the buffers it is handed).
 */
#ifndef TRAIL_SCH_EVENT_H
#define TRAIL_SCH_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define SCH_EVENT_VERSION 1
#define SCH_BIN_RECORD_SIZE 52
#define SCH_BIN_MAGIC 0xE7            /* first byte of a binary record */
#define SCH_BIN_FILE_MAGIC "TRLEVB01" /* first 8 bytes of a binary event file */
#define SCH_MAX_JSON_BYTES 4096       /* a longer JSON event is rejected without being parsed */
#define SCH_TS_MIN 0ll                /* ts is seconds since the Unix epoch, UTC */
#define SCH_TS_MAX 4102444800ll       /* 2100-01-01: later timestamps are rejected as bad input */
#define SCH_ID_MAX 0x7fffffffffffffffull /* ids are non-negative and fit in int64 */

typedef enum sch_action {
    SCH_ACTION_CLICK = 1, /* "click" (Taobao "pv") */
    SCH_ACTION_CART = 2,
    SCH_ACTION_FAV = 3,
    SCH_ACTION_BUY = 4,
    SCH_ACTION_RATE = 5, /* an explicit rating (MovieLens) */
    SCH_ACTION_VIEW = 6, /* an impression that was shown; the label says if it was clicked */
    SCH_ACTION_MAX = 6
} sch_action;

enum {
    SCH_F_LABEL = 1,   /* label is present: a labeled impression, not a behavior */
    SCH_F_PROB = 2,    /* prob is present (synthetic data: the true click probability) */
    SCH_F_REQUEST = 4, /* request_id is present */
};

typedef struct sch_event {
    uint64_t user_id;
    uint64_t item_id;
    uint64_t category_id;
    int64_t ts;          /* seconds since the epoch, UTC */
    uint64_t request_id; /* integer id, or sch_request_id_hash of a string id; 0 .. SCH_ID_MAX;
                            valid if SCH_F_REQUEST */
    float prob;          /* true click probability in [0,1]; valid if SCH_F_PROB */
    uint8_t action;      /* sch_action */
    uint8_t label;       /* 0 or 1; valid if SCH_F_LABEL */
    uint8_t flags;       /* SCH_F_* */
} sch_event;

/* One retained behavior, as the encoder keeps it and the ranker reads it (oldest first). */
typedef struct sch_behavior {
    uint64_t item_id;
    uint64_t category_id;
    int64_t ts;     /* seconds since the epoch */
    uint8_t action; /* sch_action */
} sch_behavior;

/** @brief The action's wire name ("click", ...), or NULL for an unknown code. */
const char *sch_action_name(int action);
/** @brief Parse an action name; also accepts "pv" as click. @return the code, or 0 if unknown. */
int sch_action_parse(const char *s, size_t n);

/** @brief Decode one JSON event from buf[0..n) (no NUL needed).
 *  Unknown fields, wrong types, missing required fields, out-of-range values and invalid UTF-8 are
 *  errors. @param[out] err a one-line reason naming the field, written on failure.
 *  @return CORE_OK, CORE_EFORMAT, CORE_ERANGE or CORE_ETOOBIG. */
int sch_event_from_json(sch_event *out, const char *buf, size_t n, char *err, size_t err_size);

/** @brief A string request id as the decoders keep it: its XXH3-64 with bit 63 cleared, so every
 *  request_id, integer or string, is in 0 .. SCH_ID_MAX and prints as an integer that
 *  sch_event_from_json accepts. */
uint64_t sch_request_id_hash(const char *s, size_t n);

/** @brief Encode as one JSON object without a newline; sch_event_from_json reads it back as the
 *  same event (prob is written with as many digits as that takes, at most 9).
 *  @return bytes written (excluding NUL), CORE_ERANGE for an event sch_event_validate rejects
 *  (nothing a decoder would refuse is written), or CORE_ETOOBIG if cap is too small (256 always
 *  suffices). */
int sch_event_to_json(const sch_event *ev, char *buf, size_t cap);

/** @brief Decode one 52-byte binary record (checks magic, version, action, ranges and XXH32).
 *  A request_id's bit 63 is cleared (see sch_request_id_hash); a field whose flag is clear is 0.
 *  @return CORE_OK, CORE_EFORMAT, CORE_ECHECKSUM, CORE_EVERSION or CORE_ERANGE. */
int sch_event_from_bin(sch_event *out, const uint8_t *buf, size_t n, char *err, size_t err_size);
/** @brief Encode a valid event (sch_event_validate) as a binary record; sch_event_from_bin reads
 *  it back as the same event. Fields whose flag is clear are written as 0. */
void sch_event_to_bin(const sch_event *ev, uint8_t out[SCH_BIN_RECORD_SIZE]);

/** @brief Decode either encoding, chosen by the first byte (SCH_BIN_MAGIC or JSON). */
int sch_event_decode(sch_event *out, const void *buf, size_t n, char *err, size_t err_size);

/** @brief Range checks shared by both decoders (ids, ts, action, label, prob). */
int sch_event_validate(const sch_event *ev, char *err, size_t err_size);

// ---------------------------------------------------------------------------------------------
// Event files: JSON lines, or SCH_BIN_FILE_MAGIC followed by binary records.

typedef struct sch_reader sch_reader;

/** @brief Open an event file ("-" is stdin) and detect its encoding.
 *  @param max_line JSON lines longer than this are skipped whole and reported as CORE_ETOOBIG. */
int sch_reader_open(sch_reader **out, const char *path, size_t max_line, char *errstr,
                    size_t errstr_size);
/** @brief Read the next record.
 *  @param[out] rec the raw bytes (valid until the next call); @param[out] n their length;
 *  @param[out] recno 1-based line number (JSON) or record number (binary).
 *  @return 1 for a record, 0 at end of file, CORE_ETOOBIG for an over-long line (already skipped;
 *  rec/n then hold its first bytes), CORE_EFORMAT for a truncated binary tail, CORE_EIO. */
int sch_reader_next(sch_reader *r, const char **rec, size_t *n, uint64_t *recno);
/** @brief Byte offset of the start of the next record (for resume). */
uint64_t sch_reader_offset(const sch_reader *r);
/** @brief Reposition to a byte offset obtained from sch_reader_offset, with its record number.
 *  Not possible on stdin. */
int sch_reader_seek(sch_reader *r, uint64_t offset, uint64_t recno);
int sch_reader_is_binary(const sch_reader *r);
void sch_reader_close(sch_reader *r);

/** @brief A writer for either encoding ("-" is stdout). */
typedef struct sch_writer sch_writer;
int sch_writer_open(sch_writer **out, const char *path, int binary, char *errstr,
                    size_t errstr_size);
/** @brief Append one event. @return CORE_OK, CORE_ERANGE for an event sch_event_validate rejects
 *  (not written: the readers would refuse it), CORE_EIO. */
int sch_writer_put(sch_writer *w, const sch_event *ev);
/** @brief Flush, fsync (files) and close. @return CORE_OK or CORE_EIO. */
int sch_writer_close(sch_writer *w);

#endif
