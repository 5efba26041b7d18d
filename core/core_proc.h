/* core_proc.h: what every trail process with a /metrics endpoint exports about itself
 * (trail serve, the Kafka worker): trail_build_info{version,compiler,isa} and Prometheus'
 * standard process_* metrics (CPU seconds, resident and virtual memory, open and max fds, start
 * time), read from /proc/self at each call. */
#ifndef TRAIL_CORE_PROC_H
#define TRAIL_CORE_PROC_H

#include <stddef.h>

/** @brief When this process started, in Unix seconds (boot time plus start ticks); 0 if /proc
 *  cannot tell. Read it once at start. */
double core_proc_start_time(void);

/** @brief The machine's 1-minute load average (/proc/loadavg), or -1 if it cannot be read: the
 *  benchmarks print it, since other work on a shared machine makes their timings noisy. */
double core_proc_load1(void);

/* Text appended to a fixed buffer: p[0..n) written so far, NUL-terminated; overflow is set (and
 * later writes ignored) once something did not fit. */
typedef struct core_textbuf {
    char *p;
    size_t cap, n;
    int overflow;
} core_textbuf;

void core_textbuf_printf(core_textbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** @brief Append trail_build_info and the process_* metrics (Prometheus text, each family with its
 *  HELP and TYPE) to b. */
void core_proc_metrics(core_textbuf *b, double start_time);

#endif
