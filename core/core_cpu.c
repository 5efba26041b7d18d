/* core_cpu.c: cpuid and xgetbv, and Linux's AMX permission request. */
#include "core_cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define CORE_CPU_X86 1
#endif

static core_cpu g_cpu;
static char g_features[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#ifdef CORE_CPU_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Linux 5.16+: a process must ask before it touches AMX tile data (XFEATURE_XTILEDATA = 18). */
static int amx_request(void) {
#ifdef SYS_arch_prctl
    const long ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XTILEDATA) != 0) return 0;
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &mask) != 0) return 0;
    return (mask >> XTILEDATA) & 1;
#else
    return 0;
#endif
}
#endif

static void add_feature(const char *name, int on) {
    if (!on) return;
    size_t n = strlen(g_features);
    snprintf(g_features + n, sizeof g_features - n, "%s%s", n ? " " : "", name);
}

static void detect(void) {
    core_cpu *c = &g_cpu;
    memset(c, 0, sizeof *c);
#ifdef CORE_CPU_X86
    unsigned a, b, cx, d;
    if (!__get_cpuid(0, &a, &b, &cx, &d)) return;
    unsigned maxleaf = a;
    memcpy(c->vendor, &b, 4);
    memcpy(c->vendor + 4, &d, 4);
    memcpy(c->vendor + 8, &cx, 4);
    if (__get_cpuid(0x80000000, &a, &b, &cx, &d) && a >= 0x80000004) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(c->brand, r, 48);
    }
    __get_cpuid(1, &a, &b, &cx, &d);
    int osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1, fma = (cx >> 12) & 1, f16c = (cx >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int os_ymm = (xcr0 & 0x6) == 0x6;             /* XMM and YMM state */
    int os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    int os_tile = (xcr0 & 0x60000) == 0x60000;    /* XTILECFG, XTILEDATA */
    if (maxleaf < 7) return;
    unsigned b7, c7, d7, a71 = 0, b71, c71, d71;
    __cpuid_count(7, 0, a, b7, c7, d7);
    if (a >= 1) __cpuid_count(7, 1, a71, b71, c71, d71);
    c->avx2 = os_ymm && avx && ((b7 >> 5) & 1);
    c->fma = os_ymm && fma;
    c->f16c = os_ymm && f16c;
    c->avx512f = os_zmm && ((b7 >> 16) & 1);
    c->avx512dq = c->avx512f && ((b7 >> 17) & 1);
    c->avx512bw = c->avx512f && ((b7 >> 30) & 1);
    c->avx512vl = c->avx512f && ((b7 >> 31) & 1);
    c->avx512_vnni = c->avx512f && ((c7 >> 11) & 1);
    c->avx512_bf16 = c->avx512f && ((a71 >> 5) & 1);
    c->avx_vnni = os_ymm && ((a71 >> 4) & 1);
    c->amx_bf16 = (d7 >> 22) & 1;
    c->amx_tile = (d7 >> 24) & 1;
    c->amx_int8 = (d7 >> 25) & 1;
    c->amx_usable = c->amx_tile && os_tile && c->avx512f && amx_request();
#endif
    add_feature("avx2", c->avx2);
    add_feature("fma", c->fma);
    add_feature("avx512f", c->avx512f);
    add_feature("avx512bw", c->avx512bw);
    add_feature("avx512vl", c->avx512vl);
    add_feature("avx512_vnni", c->avx512_vnni);
    add_feature("avx512_bf16", c->avx512_bf16);
    add_feature("avx_vnni", c->avx_vnni);
    add_feature("amx_bf16", c->amx_bf16 && c->amx_usable);
    add_feature("amx_int8", c->amx_int8 && c->amx_usable);
    if (c->amx_tile && !c->amx_usable) add_feature("amx(denied-by-os)", 1);
}

const core_cpu *core_cpu_get(void) {
    pthread_once(&g_once, detect);
    return &g_cpu;
}

const char *core_cpu_features(void) {
    pthread_once(&g_once, detect);
    return g_features;
}
