/* fuzz_event_bin.c: libFuzzer target for the 52-byte binary event decoder (sch_event_from_bin).
 * Built and run by tests/fuzz.sh. Each input is decoded as is (any length), and its first 52 bytes
 * again with the XXH32 at bytes 48..51 made right, so mutations reach the field checks behind the
 * checksum. An accepted record is valid and reads back unchanged from both encodings. */
#include "core_err.h"
#include "sch_event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const sch_event *a, const sch_event *b) {
    return a->user_id == b->user_id && a->item_id == b->item_id &&
           a->category_id == b->category_id && a->ts == b->ts && a->action == b->action &&
           a->flags == b->flags && a->label == b->label && a->request_id == b->request_id &&
           a->prob == b->prob;
}

static void check(const uint8_t *buf, size_t n) {
    sch_event ev, back;
    char err[256], js[300];
    uint8_t rec[SCH_BIN_RECORD_SIZE];
    err[0] = 0;
    int rc = sch_event_from_bin(&ev, buf, n, err, sizeof err);
    if (rc != CORE_OK) {
        if (rc != CORE_EFORMAT && rc != CORE_ERANGE && rc != CORE_ECHECKSUM && rc != CORE_EVERSION)
            abort();
        if (!err[0] || !memchr(err, 0, sizeof err)) abort();
        return;
    }
    if (n != SCH_BIN_RECORD_SIZE || sch_event_validate(&ev, err, sizeof err) != CORE_OK) abort();
    sch_event_to_bin(&ev, rec);
    if (sch_event_from_bin(&back, rec, sizeof rec, err, sizeof err) != CORE_OK || !same(&ev, &back))
        abort();
    int jn = sch_event_to_json(&ev, js, sizeof js);
    if (jn <= 0 || sch_event_from_json(&back, js, (size_t)jn, err, sizeof err) != CORE_OK ||
        !same(&ev, &back))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    if (size >= SCH_BIN_RECORD_SIZE) {
        uint8_t rec[SCH_BIN_RECORD_SIZE];
        memcpy(rec, data, sizeof rec);
        uint32_t sum = XXH32(rec, 48, 0);
        for (int i = 0; i < 4; i++)
            rec[48 + i] = (uint8_t)(sum >> (8 * i));
        check(rec, sizeof rec);
    }
    return 0;
}
