/* rank_isa.h: the serving head's compute paths and which one this process runs.
 *
 * A path is a precision and an instruction set for the packed GEMMs of the serving head
 * (rank_pgemm.h). From lowest to highest:
 *   scalar       portable C loops, fp32 (the reference every other path is tested against)
 *   fp32         OpenBLAS sgemm, fp32 (training's engine; subject to OpenBLAS's core guess)
 *   avx2         trail's own AVX2+FMA kernel, fp32
 *   avx2-int8    the head's layers in int8 on AVX2 (vpmaddubsw): 7-bit activations, 8-bit
 *                weights, int32 sums; the other GEMMs of a request in fp32 (avx2)
 *   avx2-int16   the head's layers in 16-bit fixed point on AVX2 (vpmaddwd): 12-bit activations
 *                and weights (a scale per row), int32 sums; the other GEMMs in fp32 (avx2)
 *   avx512-bf16  AVX-512 BF16 (vdpbf16ps): bf16 inputs, fp32 accumulation
 *   avx512-vnni  the head's layers in int8 on AVX-512 VNNI (vpdpbusd): 8-bit activations and
 *                weights, int32 sums; the other GEMMs in bf16 where the CPU has AVX-512 BF16,
 *                else fp32
 *   amx-bf16     AMX tiles (tdpbf16ps): bf16 inputs, fp32 accumulation
 * int8 quantizes each weight row with its own scale (per output channel) when the model is
 * packed, and each activation row of each input block (the head's column groups) with its own
 * scale per request; sums are exact in int32 and rescaled to fp32. The int8 paths are opt-in,
 * never chosen by default: on trained models they keep AUC and log loss within 5e-4 and 1e-3 of
 * fp32 but move single probabilities by up to ~2.5e-2, above the 5e-3 serving bound the
 * default paths hold (docs/QUALITY.md, "Serving paths").
 * The default is the highest path the CPU and OS allow (core_cpu.h). TRAIL_ISA=<name> in the
 * environment, or rank_isa_force (the --isa flags), picks another; naming a path this machine
 * cannot run is an error, never a silent fallback.
 */
#ifndef TRAIL_RANK_ISA_H
#define TRAIL_RANK_ISA_H

#include "core_report.h"

#include <stddef.h>
#include <stdio.h>

typedef enum rank_isa {
    RANK_ISA_SCALAR = 0,
    RANK_ISA_FP32,
    RANK_ISA_AVX2,
    RANK_ISA_AVX2_INT8,
    RANK_ISA_AVX2_INT16,
    RANK_ISA_AVX512_BF16,
    RANK_ISA_AVX512_VNNI,
    RANK_ISA_AMX_BF16,
    RANK_ISA_COUNT
} rank_isa;

/** @brief The path's name ("scalar", "fp32", "avx2", "avx2-int8", "avx2-int16", "avx512-bf16",
 *  "avx512-vnni", "amx-bf16"). */
const char *rank_isa_name(rank_isa isa);
/** @brief The precision of its head's GEMM inputs ("fp32", "bf16", "int16" or "int8"). */
const char *rank_isa_precision(rank_isa isa);
/** @brief 1 for the int8 paths. */
int rank_isa_int8(rank_isa isa);
/** @brief 1 for the integer paths (int8 and int16): scaled weights, quantized activations. */
int rank_isa_integer(rank_isa isa);
/** @brief The documented bound of max |p - p_fp32| on a path: 2e-5 for fp32 precision, 5e-3
 *  for bf16 (the serving bound), 5e-2 for the opt-in int8 paths. Tests hold each path to it. */
double rank_isa_max_dp(rank_isa isa);
/** @brief The path a request's other GEMMs (attention, self-attention, per-request projections)
 *  run on: the path itself, except the int8 paths, which quantize only the head. */
rank_isa rank_isa_companion(rank_isa isa);
/** @brief The path the GEMMs that must stay in fp32 run on beside a path (exact attention's
 *  window, the recent rows' self-attention): the path itself if it computes in fp32, else
 *  trail's own fp32 kernel (avx2, or scalar without AVX2). */
rank_isa rank_isa_fp32_twin(rank_isa isa);
/** @brief 1 if this CPU and OS can run the path. */
int rank_isa_available(rank_isa isa);
/** @brief Parse a name (or "auto": the best available).
 *  @return CORE_OK, CORE_EINVAL for an unknown name, CORE_ERANGE for a path this machine lacks
 *  (err says which, and what it has). */
int rank_isa_parse(const char *name, rank_isa *out, char *err, size_t err_size);
/** @brief The best path this machine runs that holds the serving bound (not an int8 path). */
rank_isa rank_isa_best(void);
/** @brief The path new serving engines use: the forced one, else TRAIL_ISA, else the best.
 *  An invalid TRAIL_ISA is reported by rank_isa_init; here it falls back to the best. */
rank_isa rank_isa_current(void);
/** @brief Read TRAIL_ISA once (commands call this at start so a bad value stops them with a
 *  clear message). @return CORE_OK or the rank_isa_parse error, described in err. */
int rank_isa_init(char *err, size_t err_size);
/** @brief Force a path by name for this process (the --isa flags); same errors as rank_isa_parse.
 */
int rank_isa_force(const char *name, char *err, size_t err_size);

/** @brief The serving path this process would use and why, the paths this CPU runs, its features
 *  and OpenBLAS's core, as fields of r (`trail model info`). */
void rank_isa_describe(core_report *r);

/** @brief OpenBLAS's chosen core name, and whether it looks like a worse guess than this CPU
 *  allows (an SSE-era core on an AVX2 or AVX-512 machine). When it does, *warning holds one line
 *  naming both and the fix; else it is set to "". */
const char *rank_isa_openblas_core(void);
int rank_isa_openblas_check(char *warning, size_t size);

#endif
