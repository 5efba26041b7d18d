/* pipe_test_util.h: helpers shared by the pipeline tests: read topics back, GET a worker's
 * metrics port. */
#ifndef TRAIL_PIPE_TEST_UTIL_H
#define TRAIL_PIPE_TEST_UTIL_H

#include "test_common.h"

#include "test_http.h"

#include "core_err.h"
#include "pipe_kafka.h"

#include <netdb.h>
#include <sys/socket.h>

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

/* GET path from host:port (a name or numeric address) with HTTP/1.0. @return the status (-1 if
 * nothing answered); the response into resp, *body pointing at its body. */
static inline int pipe_test_http_get(const char *host, int port, const char *path, char *resp,
                                     size_t cap, char **body) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[16], req[512];
    *body = resp;
    resp[0] = 0;
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai)) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    return http_exchange(fd, req, (size_t)n, resp, cap, body);
}

#endif
