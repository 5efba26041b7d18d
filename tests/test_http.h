/* test_http.h: one HTTP/1.1 exchange on a connected socket, for the serving tests (the raw-socket
 * abuse tests use it without the rest of test_serve_common.h). */
#ifndef TRAIL_TEST_HTTP_H
#define TRAIL_TEST_HTTP_H

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* Send raw bytes on a connected socket, read the whole response (the request says Connection:
 * close), close it. @return the HTTP status, or -1 on a socket error; *body points into resp. */
static inline int http_exchange(int fd, const char *req, size_t req_len, char *resp, size_t cap,
                                char **body) {
    size_t n = 0, off = 0;
    while (off < req_len) {
        ssize_t k = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (k <= 0) break; // the server may answer and close before reading everything
        off += (size_t)k;
    }
    for (;;) {
        ssize_t k = recv(fd, resp + n, cap - 1 - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
        if (n == cap - 1) break;
    }
    close(fd);
    resp[n] = '\0';
    int status = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) return -1;
    char *b = strstr(resp, "\r\n\r\n");
    *body = b ? b + 4 : resp + n;
    return status;
}

#endif
