/* test_serve_fake_score.c: TEST FAKE of the scorer (rank_score.h), linked into the serving tests
 * only while the real one is not built (tests/serve.cmake chooses). A fake through the module seam
 * (STYLE.md section 9), not an implementation: the "score" is
 * sigmoid(item_bias[row] + b3 + <x_candidate, mean of recent x> + 0.01 * sum(dense)), which depends
 * on the model's parameters, so two models give different scores and a mixed-model response is
 * detectable. Never linked into the trail binary.
 */
#include "core_alloc.h"
#include "core_err.h"
#include "rank_score.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Scorer

struct rank_scratch {
    uint32_t max_B, max_T;
    float *x, *u; // (C), (C)
};

int rank_scratch_new(rank_scratch **out, const mdl_model *m, uint32_t max_B, uint32_t max_T) {
    rank_scratch *s = core_calloc(1, sizeof *s);
    if (!s) return CORE_ENOMEM;
    s->max_B = max_B;
    s->max_T = max_T;
    s->x = core_calloc(m->cfg.C, sizeof(float));
    s->u = core_calloc(m->cfg.C, sizeof(float));
    if (!s->x || !s->u) {
        rank_scratch_destroy(s);
        return CORE_ENOMEM;
    }
    *out = s;
    return CORE_OK;
}

void rank_scratch_destroy(rank_scratch *s) {
    if (!s) return;
    core_free(s->x);
    core_free(s->u);
    core_free(s);
}

int rank_score(float *out, rank_scratch *s, const mdl_model *m, const rank_history *h,
               const uint64_t *item_id, const uint64_t *category_id, uint32_t B) {
    uint32_t C = m->cfg.C;
    if (B > s->max_B || h->T > s->max_T) return CORE_ETOOBIG;
    memset(s->u, 0, C * sizeof(float));
    for (uint32_t j = 0; j < h->N; j++) {
        mdl_embed(m, h->recent[j].item_id, h->recent[j].category_id, s->x);
        for (uint32_t c = 0; c < C; c++)
            s->u[c] += s->x[c] / (float)h->N;
    }
    float dsum = 0;
    for (uint32_t k = 0; h->dense && k < m->cfg.n_dense; k++)
        dsum += h->dense[k];
    for (uint32_t b = 0; b < B; b++) {
        mdl_embed(m, item_id[b], category_id[b], s->x);
        float z = m->p.item_bias[mdl_item_row(m, item_id[b])] + m->p.b3[0] + 0.01f * dsum;
        for (uint32_t c = 0; c < C; c++)
            z += s->x[c] * s->u[c];
        out[b] = 1.f / (1.f + expf(-z));
    }
    return CORE_OK;
}
