/* pipe_test_util.h: helpers shared by the pipeline tests that read topics back. */
#ifndef TRAIL_PIPE_TEST_UTIL_H
#define TRAIL_PIPE_TEST_UTIL_H

#include "test_common.h"

#include "core_err.h"
#include "pipe_kafka.h"

/* A group-less consumer assigned every partition of topic (at most 64) from the beginning. */
static inline pipe_consumer *pipe_test_consume_from_start(const char *brokers, const char *topic,
                                                          int timeout_ms) {
    pipe_consumer *c;
    char err[512];
    int np = 0;
    int32_t parts[64];
    int64_t offs[64];
    assert_int_equal(pipe_consumer_new(&c, brokers, NULL, topic, NULL, NULL, err, sizeof err),
                     CORE_OK);
    assert_int_equal(pipe_consumer_partition_count(c, topic, timeout_ms, &np), CORE_OK);
    assert_true(np >= 1 && np <= 64);
    for (int i = 0; i < np; i++) {
        parts[i] = i;
        offs[i] = PIPE_OFFSET_BEGINNING;
    }
    assert_int_equal(pipe_consumer_assign(c, topic, parts, offs, np), CORE_OK);
    return c;
}

#endif
