/* fuzz_event_json.c: libFuzzer target for the JSON event decoder (sch_event_from_json).
 * Built and run by tests/fuzz.sh. Beyond "no crash, no sanitizer report": an accepted event is
 * valid and reads back unchanged from both encodings (decode(encode(e)) == e); a refused one has
 * a documented code and a reason. */
#include "core_err.h"
#include "sch_event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const sch_event *a, const sch_event *b) {
    return a->user_id == b->user_id && a->item_id == b->item_id &&
           a->category_id == b->category_id && a->ts == b->ts && a->action == b->action &&
           a->flags == b->flags && a->label == b->label && a->request_id == b->request_id &&
           a->prob == b->prob;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sch_event ev, back;
    char err[256], js[300];
    uint8_t rec[SCH_BIN_RECORD_SIZE];
    err[0] = 0;
    int rc = sch_event_from_json(&ev, (const char *)data, size, err, sizeof err);
    if (rc != CORE_OK) {
        if (rc != CORE_EFORMAT && rc != CORE_ERANGE && rc != CORE_ETOOBIG && rc != CORE_EVERSION)
            abort();
        if (!err[0] || !memchr(err, 0, sizeof err)) abort();
        return 0;
    }
    if (sch_event_validate(&ev, err, sizeof err) != CORE_OK) abort();
    int n = sch_event_to_json(&ev, js, sizeof js);
    if (n <= 0 || n >= 256) abort();
    if (sch_event_from_json(&back, js, (size_t)n, err, sizeof err) != CORE_OK || !same(&ev, &back))
        abort();
    sch_event_to_bin(&ev, rec);
    if (sch_event_decode(&back, rec, sizeof rec, err, sizeof err) != CORE_OK || !same(&ev, &back))
        abort();
    return 0;
}
