/* core_cpu.h: what this CPU and OS let the process run, read once at start.
 *
 * An instruction set is usable only when the CPU reports it (cpuid) and the OS saves its register
 * state on a context switch (xgetbv: XMM/YMM for AVX, opmask/ZMM for AVX-512, and for AMX the tile
 * state, which Linux also requires each process to ask for with arch_prctl(ARCH_REQ_XCOMP_PERM)).
 * Every fast path in trail is chosen from these flags at run time; none is assumed at build time.
 */
#ifndef TRAIL_CORE_CPU_H
#define TRAIL_CORE_CPU_H

typedef struct core_cpu {
    int avx2, fma, f16c;                       /* with the OS saving YMM state */
    int avx512f, avx512bw, avx512vl, avx512dq; /* with the OS saving ZMM and opmask state */
    int avx512_vnni, avx512_bf16, avx_vnni;
    int amx_tile, amx_bf16, amx_int8; /* the CPU has AMX (cpuid) */
    int amx_usable;                   /* ... and Linux granted this process the tile state */
    char vendor[13];
    char brand[49];
} core_cpu;

/** @brief The flags of this machine, detected on the first call (thread-safe; the AMX permission
 *  request is made then, once per process). */
const core_cpu *core_cpu_get(void);

/** @brief Space-separated names of the vector extensions core_cpu_get found usable
 *  (e.g. "avx2 fma avx512f avx512bw avx512vl avx512_bf16 avx512_vnni"), for logs. */
const char *core_cpu_features(void);

#endif
