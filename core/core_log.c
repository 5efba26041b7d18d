/* core_log.c: the log sink. One line per call, written with a single fputs so that lines from
 * several threads do not interleave. */
#include "core_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

int core_log_level = CORE_LOG_INFO;
static core_log_cb *log_cb;
static void *log_opaque;
static _Atomic int journal = -1; /* -1: not decided yet */

int core_log_level_parse(const char *name, int *level, char *err, size_t errlen) {
    static const struct {
        const char *name;
        int level;
    } names[] = {{"error", CORE_LOG_ERR},     {"err", CORE_LOG_ERR},
                 {"warn", CORE_LOG_WARNING},  {"warning", CORE_LOG_WARNING},
                 {"notice", CORE_LOG_NOTICE}, {"info", CORE_LOG_INFO},
                 {"debug", CORE_LOG_DEBUG}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i].name)) {
            *level = names[i].level;
            return 0;
        }
    if (name && name[0] >= '3' && name[0] <= '7' && !name[1]) {
        *level = name[0] - '0';
        return 0;
    }
    snprintf(err, errlen, "unknown log level '%s' (error, warn, notice, info, debug, or 3-7)",
             name ? name : "");
    return -1;
}

int core_log_level_opt(const char *value, void *dst, char *err, size_t errlen) {
    (void)dst;
    return core_log_level_parse(value, &core_log_level, err, errlen);
}

void core_log_set_journal(int on) {
    journal = on;
}

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected to stderr; it only holds when
 * stderr is still that stream (not redirected by a wrapper). */
static int stderr_is_journal(void) {
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st)) return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void core_log_set(core_log_cb *cb, void *opaque) {
    log_cb = cb;
    log_opaque = opaque;
}

void core_log_write(int level, const char *fmt, ...) {
    static const char *names[] = {"EMERG", "ALERT",  "CRIT", "ERR",
                                  "WARN",  "NOTICE", "INFO", "DEBUG"};
    char msg[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_cb) {
        log_cb(level, msg, log_opaque);
        return;
    }
    if (journal < 0) journal = stderr_is_journal();
    if (journal) { /* the journal stamps time itself and reads the priority from <N> */
        snprintf(line, sizeof line, "<%d>%s\n", level < 0 ? 0 : level > 7 ? 7 : level, msg);
        fputs(line, stderr);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
             names[level < 0   ? 0
                   : level > 7 ? 7
                               : level],
             msg);
    fputs(line, stderr);
}
