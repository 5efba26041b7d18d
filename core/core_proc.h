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

/** @brief Write trail_build_info and the process_* metrics (Prometheus text, each family with its
 *  HELP and TYPE) into buf. @return bytes written, or -1 if cap is too small. */
int core_proc_metrics(char *buf, size_t cap, double start_time);

#endif
