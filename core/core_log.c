/* core_log.c: the log sink. One line per call, written with a single fputs so that lines from
 * several threads do not interleave. */
#include "core_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

int core_log_level = CORE_LOG_INFO;
static core_log_cb *log_cb;
static void *log_opaque;

void core_log_set(core_log_cb *cb, void *opaque) {
    log_cb = cb;
    log_opaque = opaque;
}

void core_log_write(int level, const char *fmt, ...) {
    static const char *names[] = {"EMERG", "ALERT", "CRIT", "ERR", "WARN", "NOTICE", "INFO", "DEBUG"};
    char msg[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_cb) {
        log_cb(level, msg, log_opaque);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
             names[level < 0 ? 0 : level > 7 ? 7 : level], msg);
    fputs(line, stderr);
}
