/* core_log.h: one-line structured logging with a replaceable sink.
 *
 * Levels follow syslog 0-7 (librdkafka's scale). CORE_LOG checks the level before it evaluates its
 * arguments. Lines read `module: event key=value ...`. The default sink writes to stderr with a UTC
 * timestamp; tests install their own with core_log_set().
 */
#ifndef TRAIL_CORE_LOG_H
#define TRAIL_CORE_LOG_H

#include <stddef.h>

enum {
    CORE_LOG_ERR = 3,
    CORE_LOG_WARNING = 4,
    CORE_LOG_NOTICE = 5,
    CORE_LOG_INFO = 6,
    CORE_LOG_DEBUG = 7
};

typedef void core_log_cb(int level, const char *line, void *opaque);

extern int core_log_level;

/** @brief Replace the sink (NULL restores stderr). Not thread-safe against concurrent logging. */
void core_log_set(core_log_cb *cb, void *opaque);
void core_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief Parse a level name for `--log-level`: error, warn, notice, info or debug (or 3-7).
 *  @return 0 and *level set, or -1 with a message naming the value and the accepted names. */
int core_log_level_parse(const char *name, int *level, char *err, size_t errlen);

/** @brief The same as an option parser (core_opts.h's CORE_OPT_FUNC, dst unused): sets
 *  core_log_level. Every long-running command's table carries it as `--log-level`. */
int core_log_level_opt(const char *value, void *dst, char *err, size_t errlen);

/** @brief Whether the default sink writes syslog priority prefixes ("<6>") instead of timestamps:
 *  set at the first write from JOURNAL_STREAM (stderr is the systemd journal), or forced here. */
void core_log_set_journal(int on);

#define CORE_LOG(level, ...)                                                                       \
    do {                                                                                           \
        if ((level) <= core_log_level) core_log_write((level), __VA_ARGS__);                       \
    } while (0)

#endif
