/* fuzz_request.c: libFuzzer target for the /v1/score body parser (rank_request_parse) and the
 * candidate-line parser of `trail rank` (rank_candidate_line_parse).
 * Built and run by tests/fuzz.sh with -fsanitize=fuzzer,address,undefined. Beyond "no crash, no
 * sanitizer report", it checks the parser's contract on every input: success leaves counts within
 * capacity and ids within range; failure names a kind and a position inside the input. */
#include "core_err.h"
#include "rank_request.h"
#include "sch_event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rank_request *rq;
    rank_req_error pe;
    if (!rq && rank_request_new(&rq, 8, 4) != CORE_OK) abort();
    int rc = rank_request_parse(rq, (const char *)data, size, &pe);
    if (rc == CORE_OK) {
        if (rq->B > rq->max_B || rq->n_dense > rq->max_dense || rq->user_id > SCH_ID_MAX) abort();
        if (rq->has_ts && (rq->ts < SCH_TS_MIN || rq->ts > SCH_TS_MAX)) abort();
        for (uint32_t b = 0; b < rq->B; b++)
            if (rq->item_id[b] > SCH_ID_MAX || rq->category_id[b] > SCH_ID_MAX) abort();
    } else {
        if (rc != CORE_EFORMAT && rc != CORE_ERANGE && rc != CORE_ETOOBIG) abort();
        if (!pe.kind || pe.offset > size || !pe.message[0] || pe.line < 1 || pe.col < 1) abort();
        if (!memchr(pe.message, '\0', sizeof pe.message) ||
            !memchr(pe.field, '\0', sizeof pe.field))
            abort();
    }
    // the same bytes as one line of a `trail rank` candidate file
    uint64_t item = 0, cat = 0;
    rc = rank_candidate_line_parse((const char *)data, size, &item, &cat, &pe);
    if (rc == CORE_OK && (item > SCH_ID_MAX || cat > SCH_ID_MAX)) abort();
    if (rc != CORE_OK && (!pe.kind || pe.offset > size || !pe.message[0])) abort();
    return 0;
}
