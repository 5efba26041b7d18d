/* core_proc.c: what every trail process exports about itself on /metrics: trail_build_info and
 * the process_* metrics of Prometheus' client libraries, read from /proc/self (proc(5)). */
#include "core_proc.h"

#include "core_version.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* This process's /proc/self/stat fields that the process_* metrics need (proc(5)): CPU time in
 * clock ticks, start time in ticks after boot, virtual size in bytes, resident size in pages.
 * @return 0, or -1 if /proc is not there or reads otherwise. */
typedef struct proc_stat {
    unsigned long utime, stime, vsize;
    unsigned long long start_ticks;
    long rss_pages;
} proc_stat;

static int read_proc_stat(proc_stat *ps) {
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name before it may hold anything */
    if (!p) return -1;
    // fields 3 (state) .. 24 (rss)
    return sscanf(p + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                  "%llu %lu %ld",
                  &ps->utime, &ps->stime, &ps->start_ticks, &ps->vsize, &ps->rss_pages) == 5
               ? 0
               : -1;
}

/* When this process started, in Unix seconds: the boot time (/proc/stat's btime) plus the start
 * in ticks after boot. 0 if /proc cannot tell. */
double core_proc_start_time(void) {
    proc_stat ps;
    char line[256];
    unsigned long long btime = 0;
    long tck = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1) break;
    fclose(f);
    if (!btime || tck <= 0 || read_proc_stat(&ps)) return 0;
    return (double)btime + (double)ps.start_ticks / (double)tck;
}

#define STR_(x) #x
#define STR(x) STR_(x)
#if defined(__clang__)
#define BUILD_COMPILER                                                                             \
    "clang " STR(__clang_major__) "." STR(__clang_minor__) "." STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define BUILD_COMPILER "gcc " STR(__GNUC__) "." STR(__GNUC_MINOR__) "." STR(__GNUC_PATCHLEVEL__)
#else
#define BUILD_COMPILER "unknown"
#endif
/* The instruction set the binary itself was compiled for (an x86-64 microarchitecture level;
 * higher with TRAIL_NATIVE): what a CPU must have to run it at all. The kernels picked at run
 * time are trail_ranker_isa_info's. */
#if defined(__x86_64__)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define BUILD_ISA "x86-64-v4"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
#define BUILD_ISA "x86-64-v3"
#elif defined(__SSE4_2__) && defined(__POPCNT__)
#define BUILD_ISA "x86-64-v2"
#else
#define BUILD_ISA "x86-64"
#endif
#elif defined(__aarch64__)
#define BUILD_ISA "aarch64"
#else
#define BUILD_ISA "unknown"
#endif

/* Descriptors open now, not counting the one that lists them. -1 if /proc cannot tell. */
static long open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

void core_textbuf_printf(core_textbuf *b, const char *fmt, ...) {
    va_list ap;
    if (b->overflow) return;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= b->cap - b->n)
        b->overflow = 1;
    else
        b->n += (size_t)k;
}

static void gauge(core_textbuf *b, const char *name, const char *type, const char *help, double v) {
    core_textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name,
                        v);
}

void core_proc_metrics(core_textbuf *b, double start_time) {
    core_textbuf_printf(
        b,
        "# HELP trail_build_info The running binary (value 1): its version, the compiler that "
        "built it, and the instruction set it was compiled for.\n"
        "# TYPE trail_build_info gauge\n"
        "trail_build_info{version=\"%s\",compiler=\"%s\",isa=\"%s\"} 1\n",
        TRAIL_VERSION, BUILD_COMPILER, BUILD_ISA);
    proc_stat ps;
    struct rlimit rl;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds = open_fds();
    if (read_proc_stat(&ps) == 0 && tck > 0 && page > 0) {
        gauge(b, "process_cpu_seconds_total", "counter",
              "Total user and system CPU time spent in seconds.",
              (double)(ps.utime + ps.stime) / (double)tck);
        gauge(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
              (double)ps.rss_pages * (double)page);
        gauge(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
              (double)ps.vsize);
    }
    if (fds >= 0)
        gauge(b, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
              rl.rlim_cur == RLIM_INFINITY ? 1.8446744073709552e19 : (double)rl.rlim_cur);
    if (start_time > 0)
        gauge(b, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.", start_time);
}

double core_proc_load1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}
