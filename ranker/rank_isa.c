/* rank_isa.c: which serving path this process runs, and OpenBLAS's guess checked against cpuid. */
#include "rank_isa.h"

#include "core_cpu.h"
#include "core_err.h"
#include "rank_blas.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_names[RANK_ISA_COUNT] = {
    "scalar", "fp32", "avx2", "avx2-int8", "avx2-int16", "avx512-bf16", "avx512-vnni", "amx-bf16"};

const char *rank_isa_name(rank_isa isa) {
    return (unsigned)isa < RANK_ISA_COUNT ? g_names[isa] : "unknown";
}

const char *rank_isa_precision(rank_isa isa) {
    if (rank_isa_int8(isa)) return "int8";
    if (isa == RANK_ISA_AVX2_INT16) return "int16";
    return isa == RANK_ISA_AVX512_BF16 || isa == RANK_ISA_AMX_BF16 ? "bf16" : "fp32";
}

int rank_isa_int8(rank_isa isa) {
    return isa == RANK_ISA_AVX2_INT8 || isa == RANK_ISA_AVX512_VNNI;
}

int rank_isa_integer(rank_isa isa) {
    return rank_isa_int8(isa) || isa == RANK_ISA_AVX2_INT16;
}

rank_isa rank_isa_companion(rank_isa isa) {
    if (isa == RANK_ISA_AVX2_INT8 || isa == RANK_ISA_AVX2_INT16) return RANK_ISA_AVX2;
    if (isa == RANK_ISA_AVX512_VNNI)
        return rank_isa_available(RANK_ISA_AVX512_BF16) ? RANK_ISA_AVX512_BF16 : RANK_ISA_AVX2;
    return isa;
}

rank_isa rank_isa_fp32_twin(rank_isa isa) {
    if (!strcmp(rank_isa_precision(isa), "fp32")) return isa;
    return rank_isa_available(RANK_ISA_AVX2) ? RANK_ISA_AVX2 : RANK_ISA_SCALAR;
}

/* what cpuid and the OS allow */
static int cpu_runs(rank_isa isa) {
    const core_cpu *c = core_cpu_get();
    switch (isa) {
    case RANK_ISA_SCALAR:
    case RANK_ISA_FP32:
        return 1;
    case RANK_ISA_AVX2:
    case RANK_ISA_AVX2_INT8:
    case RANK_ISA_AVX2_INT16:
        return c->avx2 && c->fma && c->f16c;
    case RANK_ISA_AVX512_BF16:
        return c->avx512f && c->avx512bw && c->avx512vl && c->avx512_bf16 && c->fma;
    case RANK_ISA_AVX512_VNNI:
        return c->avx512f && c->avx512bw && c->avx512vl && c->avx512_vnni && c->avx2 && c->fma;
    case RANK_ISA_AMX_BF16:
        /* the kernel converts its inputs with AVX-512 BF16 instructions */
        return c->amx_usable && c->amx_bf16 && cpu_runs(RANK_ISA_AVX512_BF16);
    default:
        return 0;
    }
}

/* Each path the CPU runs is checked once per process against the naive loop before anything
 * uses it (rank_pgemm_selftest): a path whose kernels misbehave on some CPU is then treated as
 * unavailable, and said so once on stderr, instead of serving wrong scores. */
static pthread_mutex_t g_test_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_tested[RANK_ISA_COUNT]; /* 0 not yet, 1 passed, -1 failed */
static double g_test_err[RANK_ISA_COUNT], g_test_bound[RANK_ISA_COUNT];

static int self_tested(rank_isa isa) {
    int t = atomic_load_explicit(&g_tested[isa], memory_order_acquire);
    if (t) return t > 0; /* the per-request calls stay lock-free */
    pthread_mutex_lock(&g_test_mu);
    if (!atomic_load_explicit(&g_tested[isa], memory_order_relaxed)) {
        /* the test's GEMMs must not be routed through a serving forward this thread may be in */
        rank_route *prev = rank_blas_route(NULL);
        int bad = rank_pgemm_selftest(isa, &g_test_err[isa], &g_test_bound[isa]);
        rank_blas_route(prev);
        if (bad == 1)
            fprintf(stderr,
                    "trail: error: the %s path failed its self-test on this CPU (error %.3g, "
                    "bound %.3g); it is not used. Please report this with /proc/cpuinfo.\n",
                    g_names[isa], g_test_err[isa], g_test_bound[isa]);
        /* 1: out of bounds; a buffer too small is a bug of the test's sizes, not of the path */
        atomic_store_explicit(&g_tested[isa], bad == 1 ? -1 : 1, memory_order_release);
    }
    pthread_mutex_unlock(&g_test_mu);
    return atomic_load_explicit(&g_tested[isa], memory_order_acquire) > 0;
}

int rank_isa_available(rank_isa isa) {
    if ((unsigned)isa >= RANK_ISA_COUNT || !cpu_runs(isa)) return 0;
    return self_tested(isa);
}

double rank_isa_max_dp(rank_isa isa) {
    if (rank_isa_int8(isa)) return 5e-2;
    return !strcmp(rank_isa_precision(isa), "fp32") ? 2e-5 : 5e-3;
}

rank_isa rank_isa_best(void) {
    for (int i = RANK_ISA_COUNT - 1; i > RANK_ISA_AVX2; i--)
        if (!rank_isa_int8((rank_isa)i) && rank_isa_available((rank_isa)i)) return (rank_isa)i;
    /* trail's own fp32 kernel before OpenBLAS's: it does not depend on OpenBLAS's core guess */
    return rank_isa_available(RANK_ISA_AVX2) ? RANK_ISA_AVX2 : RANK_ISA_SCALAR;
}

int rank_isa_parse(const char *name, rank_isa *out, char *err, size_t err_size) {
    if (!strcmp(name, "auto")) {
        *out = rank_isa_best();
        return CORE_OK;
    }
    for (int i = 0; i < RANK_ISA_COUNT; i++) {
        if (strcmp(name, g_names[i])) continue;
        if (!rank_isa_available((rank_isa)i)) {
            if (cpu_runs((rank_isa)i)) {
                snprintf(err, err_size,
                         "ISA path '%s' failed its self-test on this CPU (error %.3g above the "
                         "bound %.3g): it is not used",
                         name, g_test_err[i], g_test_bound[i]);
                return CORE_ERANGE;
            }
            char have[128] = "";
            for (int j = 0; j < RANK_ISA_COUNT; j++)
                if (rank_isa_available((rank_isa)j)) {
                    size_t n = strlen(have);
                    snprintf(have + n, sizeof have - n, "%s%s", n ? ", " : "", g_names[j]);
                }
            snprintf(err, err_size,
                     "ISA path '%s' needs CPU features this machine lacks (it has: %s; paths it "
                     "runs: %s)",
                     name, core_cpu_features()[0] ? core_cpu_features() : "none", have);
            return CORE_ERANGE;
        }
        *out = (rank_isa)i;
        return CORE_OK;
    }
    snprintf(err, err_size,
             "unknown ISA path '%s' (expected auto, scalar, fp32, avx2, avx2-int8, avx2-int16, "
             "avx512-bf16, avx512-vnni or amx-bf16)",
             name);
    return CORE_EINVAL;
}

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_set; /* 0: not decided; 1: decided */
static rank_isa g_isa;

int rank_isa_init(char *err, size_t err_size) {
    pthread_mutex_lock(&g_mu);
    int rc = CORE_OK;
    if (!g_set) {
        const char *env = getenv("TRAIL_ISA");
        rank_isa isa = rank_isa_best();
        if (env && *env) {
            char e[200];
            rc = rank_isa_parse(env, &isa, e, sizeof e);
            if (rc) snprintf(err, err_size, "TRAIL_ISA: %s", e);
        }
        if (!rc) {
            g_isa = isa;
            g_set = 1;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

rank_isa rank_isa_current(void) {
    char err[256];
    if (rank_isa_init(err, sizeof err)) return rank_isa_best();
    pthread_mutex_lock(&g_mu);
    rank_isa isa = g_isa;
    pthread_mutex_unlock(&g_mu);
    return isa;
}

int rank_isa_force(const char *name, char *err, size_t err_size) {
    rank_isa isa;
    int rc = rank_isa_parse(name, &isa, err, err_size);
    if (rc) return rc;
    pthread_mutex_lock(&g_mu);
    g_isa = isa;
    g_set = 1;
    pthread_mutex_unlock(&g_mu);
    return CORE_OK;
}

const char *rank_isa_openblas_core(void) {
    return rank_blas_corename();
}

static int name_in(const char *core, const char *const *list) {
    for (; *list; list++)
        if (!strcasecmp(core, *list)) return 1;
    return 0;
}

int rank_isa_openblas_check(char *warning, size_t size) {
    static const char *const k512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const k256[] = {"Haswell",        "Zen", "SkylakeX", "Cooperlake",
                                       "SapphireRapids", NULL};
    const core_cpu *c = core_cpu_get();
    const char *core = rank_blas_corename(), *want = NULL, *has = NULL;
    if (c->avx512f && !name_in(core, k512)) {
        want = c->avx512_bf16 ? "Cooperlake" : "SkylakeX";
        has = c->avx512_bf16 ? "AVX-512 with BF16" : "AVX-512";
    } else if (!c->avx512f && c->avx2 && c->fma && !name_in(core, k256)) {
        want = "Haswell";
        has = "AVX2 and FMA";
    }
    warning[0] = '\0';
    if (!want) return 0;
    rank_isa cur = rank_isa_current();
    snprintf(warning, size,
             "OpenBLAS picked its '%s' kernels but this CPU has %s: fp32 training and the fp32 "
             "path run slower than they should; set OPENBLAS_CORETYPE=%s to fix (%s)",
             core, has, want,
             cur == RANK_ISA_FP32 ? "serving is on the fp32 path, so it is slow too"
                                  : "serving's own kernels do not depend on it");
    return 1;
}

void rank_isa_describe(core_report *r) {
    rank_isa isa = rank_isa_current();
    const char *src = getenv("TRAIL_ISA") && *getenv("TRAIL_ISA") ? "TRAIL_ISA" : "best";
    /* (an --isa flag forces the path too; the source then still reads "best" or TRAIL_ISA) */
    core_report_str(r, "serving_isa", rank_isa_name(isa));
    core_report_str(r, "serving_precision", rank_isa_precision(isa));
    core_report_str(r, "isa_source", src);
    core_report_arr(r, "isa_available");
    for (int j = 0; j < RANK_ISA_COUNT; j++)
        if (rank_isa_available((rank_isa)j)) core_report_str(r, NULL, g_names[j]);
    core_report_close(r);
    core_report_str(r, "cpu_features", core_cpu_features());
    core_report_str(r, "openblas_core", rank_blas_corename());
}
