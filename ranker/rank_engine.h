/* rank_engine.h: a model's serving weights packed for one compute path (rank_isa.h).
 *
 * Built once per model and path (at load and at every reload: a scratch holds its own, so each
 * serving thread packs once when it is made), read-only afterwards. The serving forward passes it
 * in rank_batch.engine; the net then runs every GEMM of the forward on the path's kernels
 * (rank_pgemm.h): the head on these packed weights, the user-side GEMMs (self-attention, the
 * folded projections, the short and TIN attention) packed per request in the net's scratch.
 * The fp32 path keeps OpenBLAS for all of them. Training passes no engine.
 */
#ifndef TRAIL_RANK_ENGINE_H
#define TRAIL_RANK_ENGINE_H

#include "mdl.h"
#include "rank_blas.h"
#include "rank_pgemm.h"

#include <stddef.h>

#define RANK_ENGINE_KNOWN (4 * MDL_MAX_BLOCKS + 4)

#define RANK_ENGINE_SEGS 10

/* W1 in column blocks, one GEMM segment each (the int8 paths scale each block's activations on
 * their own: the head's input groups differ in range by orders of magnitude) */
typedef struct rank_engine_w1 {
    int n;                       /* blocks */
    int off[RANK_ENGINE_SEGS];   /* first input column of each block */
    rank_pw w[RANK_ENGINE_SEGS]; /* (h1, block width) */
} rank_engine_w1;

typedef struct rank_engine {
    rank_isa isa;
    int D, Ds; /* the MLP input width; the folded head's candidate columns (rank_net_head_cols) */
    rank_engine_w1 w1;  /* the unfolded head: blocks of W1 over its D input columns */
    rank_engine_w1 w1c; /* the folded head: W1's candidate-dependent columns, in the folded
                           head's order (offsets into its Ds columns) */
    rank_pw w2;         /* (h2, h1) */
    int gather_f16;     /* SDIM's per-bucket projections are gathered from an fp16 copy: the
                           reduced-precision paths (half the bytes through the cache, for a rounding
                           of 2^-11 relative, far below their own), where AVX2 and F16C run */
    /* the user-side weights the forward's routed GEMMs take as B (self-attention blocks, the
     * short branch's projections, W1's u_long block for the per-bucket projections) */
    rank_route_known known[RANK_ENGINE_KNOWN];
    int n_known;
} rank_engine;

/** @brief Pack m's head for a path the CPU runs. @return CORE_OK, CORE_ENOMEM, CORE_ERANGE
 *  (the path is not available here). */
int rank_engine_new(rank_engine **out, const mdl_model *m, rank_isa isa);
void rank_engine_destroy(rank_engine *e);
size_t rank_engine_bytes(const rank_engine *e);

#endif
