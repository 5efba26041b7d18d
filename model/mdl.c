/* mdl.c: model config, parameter layout, initialization, and the model file (save/load/verify). */
#include "mdl.h"

#include "core_alloc.h"
#include "core_err.h"
#include "core_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file is little-endian and this build reads it in place: add byte swapping"
#endif

#define HDR_CONFIG_OFF 40
#define HDR_TABLE_OFF 128
#define HDR_HEAD_FLAGS_OFF 124 /* reserved (0) in version 2 */
#define HEAD_Q_SHORT 1u
#define HEAD_SDIM_FIELDS 2u
#define HEAD_CROSS 4u
#define HEAD_WINDOW_SHIFT 8 /* bits 8..31: the training window */
#define HEAD_KNOWN                                                                                 \
    (HEAD_Q_SHORT | HEAD_SDIM_FIELDS | HEAD_CROSS | (MDL_MAX_WINDOW << HEAD_WINDOW_SHIFT))
#define TENSOR_ENTRY 64
#define FLAG_ADAM 1u
#define EMB_INIT_STD 0.05 /* item, category and TIN embeddings start N(0, EMB_INIT_STD^2) */

/* mdl_layout's tensor count at the most blocks: 5 before the blocks, 12 per block, 13 after */
_Static_assert(5 + 12 * MDL_MAX_BLOCKS + 13 <= MDL_MAX_TENSORS, "MDL_MAX_TENSORS too small");

void mdl_config_default(mdl_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->C = 64;
    cfg->S = 16;
    cfg->tau = 4;
    cfg->item_rows = 1u << 18;
    cfg->cat_rows = 1u << 14;
    cfg->long_kind = MDL_LONG_SDIM;
    cfg->short_kind = MDL_SHORT_SELFATTN;
    cfg->temporal_kind = MDL_TEMPORAL_TIN;
    cfg->n_recent = 50;
    cfg->n_blocks = 1;
    cfg->n_heads = 1;
    cfg->ffn_dim = 64;
    cfg->tin_buckets = 24;
    cfg->h1 = 200;
    cfg->h2 = 80;
    cfg->n_dense = 0;
    cfg->q_short = 1;
    cfg->sdim_hash = MDL_HASH_FIELDS;
    cfg->cross = 1;
    cfg->seed = 1;
    cfg->hash_seed = 0x7472616931ull; /* "trai1" */
}

int mdl_config_check(const mdl_config *c, char *err, size_t err_size) {
#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, err_size, __VA_ARGS__);                                                      \
        return CORE_EINVAL;                                                                        \
    } while (0)
    if (c->C < 2 || c->C > 1024 || c->C % 2) BAD("dim C=%u must be even and in [2, 1024]", c->C);
    if (c->S < 1 || c->S > 64) BAD("signatures S=%u must be in [1, 64]", c->S);
    if (c->tau < 1 || c->tau > 16) BAD("bits tau=%u must be in [1, 16]", c->tau);
    if (c->item_rows < 1 || c->item_rows > (1u << 26))
        BAD("item rows %u must be in [1, 2^26]", c->item_rows);
    if (c->cat_rows < 1 || c->cat_rows > (1u << 24))
        BAD("category rows %u must be in [1, 2^24]", c->cat_rows);
    if (c->long_kind > MDL_LONG_ATTN) BAD("unknown long variant %u", c->long_kind);
    if (c->short_kind > MDL_SHORT_DIN) BAD("unknown short variant %u", c->short_kind);
    if (c->temporal_kind > MDL_TEMPORAL_TIN) BAD("unknown temporal variant %u", c->temporal_kind);
    if (c->n_recent < 1 || c->n_recent > 1024) BAD("recent N=%u must be in [1, 1024]", c->n_recent);
    if (c->n_blocks < 1 || c->n_blocks > MDL_MAX_BLOCKS)
        BAD("blocks %u must be in [1, %d]", c->n_blocks, MDL_MAX_BLOCKS);
    if (c->n_heads < 1 || c->C % c->n_heads) BAD("heads %u must divide C=%u", c->n_heads, c->C);
    if (c->ffn_dim < 1 || c->ffn_dim > 8192) BAD("ffn width %u must be in [1, 8192]", c->ffn_dim);
    if (c->tin_buckets < 1 || c->tin_buckets > 64)
        BAD("tin buckets %u must be in [1, 64]", c->tin_buckets);
    if (c->h1 < 1 || c->h1 > 8192 || c->h2 < 1 || c->h2 > 8192)
        BAD("MLP widths %u-%u must be in [1, 8192]", c->h1, c->h2);
    if (c->n_dense > 256) BAD("dense features %u must be at most 256", c->n_dense);
    if (c->q_short > 1) BAD("q_short %u must be 0 or 1", c->q_short);
    if (c->sdim_hash > MDL_HASH_FIELDS) BAD("unknown SDIM hash %u", c->sdim_hash);
    if (c->cross > 1) BAD("cross %u must be 0 or 1", c->cross);
    if (c->window > MDL_MAX_WINDOW) BAD("window %u must be at most 2^24 - 1", c->window);
    if (c->sdim_hash == MDL_HASH_FIELDS && c->S < 2)
        BAD("field-wise SDIM hashing needs S >= 2 signatures (one per field), S=%u", c->S);
    return CORE_OK;
#undef BAD
}

void mdl_mlp_layout(const mdl_config *c, mdl_mlp_cols *o) {
    int C = (int)c->C, d = C; /* q first */
    o->ul = o->ulq = o->us = o->usq = o->ut = o->cross = -1;
    if (c->long_kind != MDL_LONG_NONE) o->ul = d, o->ulq = d + C, d += 2 * C;
    if (c->short_kind != MDL_SHORT_NONE) o->us = d, d += C;
    if (c->short_kind != MDL_SHORT_NONE && c->q_short) o->usq = d, d += C;
    if (c->temporal_kind != MDL_TEMPORAL_NONE) o->ut = d, d += C;
    if (c->cross) o->cross = d, d += MDL_CROSS_DIM;
    o->dense = d;
    o->D = d + (int)c->n_dense;
}

int mdl_reads_window(const mdl_config *c) {
    return c->long_kind == MDL_LONG_ATTN || c->cross;
}

int mdl_reads_buckets(const mdl_config *c) {
    return c->long_kind == MDL_LONG_SDIM || c->long_kind == MDL_LONG_AVGPOOL;
}

int mdl_window_mismatch(const mdl_config *c, uint32_t store_window, char *msg, size_t cap) {
    if (!c->window || c->window == store_window) return 0;
    if (c->long_kind == MDL_LONG_NONE && !c->cross) return 0;
    snprintf(msg, cap,
             "the model was trained on windows of %u behaviors per user, the store keeps %u: its "
             "long-term inputs differ from training (create the store with --window %u, or "
             "train with --window %u)",
             c->window, store_window, c->window, store_window);
    return 1;
}

uint32_t mdl_mlp_in_dim(const mdl_config *c) {
    mdl_mlp_cols o;
    mdl_mlp_layout(c, &o);
    return (uint32_t)o.D;
}

static void add_tensor(mdl_tensor *t, int *n, size_t *off, const char *name, int trainable,
                       uint32_t d0, uint32_t d1) {
    mdl_tensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = d1 ? 2 : 1;
    x->dims[0] = d0;
    x->dims[1] = d1;
    x->count = (size_t)d0 * (d1 ? d1 : 1);
    x->offset = *off;
    x->trainable = trainable;
    /* keep each tensor 64-byte aligned inside the arena */
    *off += (x->count + 15) & ~(size_t)15;
}

size_t mdl_layout(const mdl_config *c, mdl_tensor *t, int *n) {
    size_t off = 0;
    uint32_t C = c->C, F = c->ffn_dim;
    char name[MDL_NAME_LEN];
    *n = 0;
    add_tensor(t, n, &off, "item_emb", 1, c->item_rows, C / 2);
    add_tensor(t, n, &off, "cat_emb", 1, c->cat_rows, C / 2);
    add_tensor(t, n, &off, "item_bias", 1, c->item_rows, 0);
    add_tensor(t, n, &off, "simhash_r", 0, c->S * c->tau, C);
    add_tensor(t, n, &off, "pos_emb", 1, c->n_recent, C);
    for (uint32_t l = 0; l < c->n_blocks; l++) {
#define BLK(suffix, d0, d1)                                                                        \
    snprintf(name, sizeof name, "blk%u.%s", l, suffix);                                            \
    add_tensor(t, n, &off, name, 1, d0, d1)
        BLK("ln1_w", C, 0);
        BLK("ln1_b", C, 0);
        BLK("w_qkv", 3 * C, C);
        BLK("b_qkv", 3 * C, 0);
        BLK("w_o", C, C);
        BLK("b_o", C, 0);
        BLK("ln2_w", C, 0);
        BLK("ln2_b", C, 0);
        BLK("w_ff1", F, C);
        BLK("b_ff1", F, 0);
        BLK("w_ff2", C, F);
        BLK("b_ff2", C, 0);
#undef BLK
    }
    add_tensor(t, n, &off, "lnf_w", 1, C, 0);
    add_tensor(t, n, &off, "lnf_b", 1, C, 0);
    add_tensor(t, n, &off, "w_tq", 1, C, C);
    add_tensor(t, n, &off, "w_tk", 1, C, C);
    add_tensor(t, n, &off, "w_lq", 1, C, C);
    add_tensor(t, n, &off, "w_lk", 1, C, C);
    add_tensor(t, n, &off, "tin_emb", 1, c->tin_buckets + 1, C);
    add_tensor(t, n, &off, "w1", 1, c->h1, mdl_mlp_in_dim(c));
    add_tensor(t, n, &off, "b1", 1, c->h1, 0);
    add_tensor(t, n, &off, "w2", 1, c->h2, c->h1);
    add_tensor(t, n, &off, "b2", 1, c->h2, 0);
    add_tensor(t, n, &off, "w3", 1, c->h2, 0);
    add_tensor(t, n, &off, "b3", 1, 1, 0);
    return off;
}

void mdl_params_bind(mdl_params *p, const mdl_config *c, float *a) {
    mdl_tensor t[MDL_MAX_TENSORS];
    int n, i = 0;
    mdl_layout(c, t, &n);
    memset(p, 0, sizeof *p);
#define NEXT (a + t[i++].offset)
    p->item_emb = NEXT;
    p->cat_emb = NEXT;
    p->item_bias = NEXT;
    p->simhash_r = NEXT;
    p->pos_emb = NEXT;
    for (uint32_t l = 0; l < c->n_blocks; l++) {
        mdl_block *b = &p->blk[l];
        b->ln1_w = NEXT;
        b->ln1_b = NEXT;
        b->w_qkv = NEXT;
        b->b_qkv = NEXT;
        b->w_o = NEXT;
        b->b_o = NEXT;
        b->ln2_w = NEXT;
        b->ln2_b = NEXT;
        b->w_ff1 = NEXT;
        b->b_ff1 = NEXT;
        b->w_ff2 = NEXT;
        b->b_ff2 = NEXT;
    }
    p->lnf_w = NEXT;
    p->lnf_b = NEXT;
    p->w_tq = NEXT;
    p->w_tk = NEXT;
    p->w_lq = NEXT;
    p->w_lk = NEXT;
    p->tin_emb = NEXT;
    p->w1 = NEXT;
    p->b1 = NEXT;
    p->w2 = NEXT;
    p->b2 = NEXT;
    p->w3 = NEXT;
    p->b3 = NEXT;
#undef NEXT
}

// ---------------------------------------------------------------------------------------------
// Fingerprints

static void config_bytes(const mdl_config *c, uint8_t out[80]) {
    uint32_t u[16] = {c->C,           c->S,         c->tau,        c->item_rows,
                      c->cat_rows,    c->long_kind, c->short_kind, c->temporal_kind,
                      c->n_recent,    c->n_blocks,  c->n_heads,    c->ffn_dim,
                      c->tin_buckets, c->h1,        c->h2,         c->n_dense};
    memcpy(out, u, 64);
    memcpy(out + 64, &c->seed, 8);
    memcpy(out + 72, &c->hash_seed, 8);
}

/* The header's flags word (offset 124): bit 0 = q_short, bit 1 = field-wise SDIM hash, bit 2 =
 * cross statistics, bits 8..31 = the training window (0: not recorded). */
static uint32_t head_flags(const mdl_config *c) {
    return (c->q_short ? HEAD_Q_SHORT : 0) |
           (c->sdim_hash == MDL_HASH_FIELDS ? HEAD_SDIM_FIELDS : 0) | (c->cross ? HEAD_CROSS : 0) |
           c->window << HEAD_WINDOW_SHIFT;
}

static const mdl_tensor *find_tensor(const mdl_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

void mdl_model_refresh_versions(mdl_model *m) {
    uint8_t cb[80];
    config_bytes(&m->cfg, cb);
    XXH3_state_t *s = XXH3_createState();
    if (!s) abort();
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, cb, sizeof cb);
    uint32_t hf = head_flags(&m->cfg); /* only when set: version-2 files keep their ids */
    if (hf) XXH3_64bits_update(s, &hf, sizeof hf);
    XXH3_64bits_update(s, m->arena, m->n_floats * sizeof(float));
    m->model_version = XXH3_64bits_digest(s);

    const mdl_config *c = &m->cfg;
    uint64_t enc_cfg[6] = {c->C, c->S, c->tau, c->item_rows, c->cat_rows, c->hash_seed};
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, enc_cfg, sizeof enc_cfg);
    static const char *enc_tensors[] = {"simhash_r", "item_emb", "cat_emb"};
    for (int i = 0; i < 3; i++) {
        const mdl_tensor *t = find_tensor(m, enc_tensors[i]);
        XXH3_64bits_update(s, m->arena + t->offset, t->count * sizeof(float));
    }
    m->encoding_version = XXH3_64bits_digest(s);
    XXH3_freeState(s);
}

// ---------------------------------------------------------------------------------------------
// Allocation and initialization

static int model_alloc(mdl_model **out, const mdl_config *cfg) {
    mdl_model *m = core_calloc(1, sizeof *m);
    if (!m) return CORE_ENOMEM;
    m->cfg = *cfg;
    m->n_floats = mdl_layout(cfg, m->tensors, &m->n_tensors);
    m->arena = core_aligned_alloc(m->n_floats * sizeof(float));
    if (!m->arena) {
        core_free(m);
        return CORE_ENOMEM;
    }
    memset(m->arena, 0, m->n_floats * sizeof(float));
    mdl_params_bind(&m->p, cfg, m->arena);
    *out = m;
    return CORE_OK;
}

static void fill_gauss(float *x, size_t n, double std, uint64_t seed, const char *name) {
    core_rng r;
    core_rng_seed(&r, seed ^ XXH3_64bits(name, strlen(name)));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(std * core_rng_gauss(&r));
}

int mdl_model_init(mdl_model **out, const mdl_config *cfg, char *err, size_t err_size) {
    mdl_model *m;
    int rc = mdl_config_check(cfg, err, err_size);
    if (rc) return rc;
    if ((rc = model_alloc(&m, cfg))) {
        snprintf(err, err_size, "out of memory allocating the model");
        return rc;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const mdl_tensor *t = &m->tensors[i];
        float *x = m->arena + t->offset;
        const char *dot = strchr(t->name, '.');
        const char *base = dot ? dot + 1 : t->name;
        if (!strcmp(base, "simhash_r")) {
            fill_gauss(x, t->count, 1.0, cfg->seed, t->name);
            if (cfg->sdim_hash == MDL_HASH_FIELDS) { /* x = [item C/2 | category C/2] */
                uint32_t C = t->dims[1], half = C / 2, cat_proj = (cfg->S / 2) * cfg->tau;
                for (uint32_t k = 0; k < t->dims[0]; k++) {
                    float *row = x + (size_t)k * C;
                    if (k < cat_proj)
                        memset(row, 0, half * sizeof(float)); /* category only */
                    else
                        memset(row + half, 0, (C - half) * sizeof(float)); /* item only */
                }
            }
        } else if (!strcmp(base, "item_emb") || !strcmp(base, "cat_emb") ||
                   !strcmp(base, "tin_emb")) {
            fill_gauss(x, t->count, EMB_INIT_STD, cfg->seed, t->name);
        } else if (!strcmp(base, "pos_emb")) {
            fill_gauss(x, t->count, 0.02, cfg->seed, t->name);
        } else if (!strcmp(base, "ln1_w") || !strcmp(base, "ln2_w") || !strcmp(base, "lnf_w")) {
            for (size_t k = 0; k < t->count; k++)
                x[k] = 1.f;
        } else if (!strcmp(base, "w_lq") || !strcmp(base, "w_lk")) {
            /* identity / EMB_INIT_STD (see mdl_model_init in mdl.h) */
            for (uint32_t k = 0; k < t->dims[0]; k++)
                x[(size_t)k * t->dims[1] + k] = (float)(1.0 / EMB_INIT_STD);
        } else if (t->ndim == 2) {
            /* a linear layer (out, in): fan-in scaling keeps activations near unit variance */
            fill_gauss(x, t->count, 1.0 / sqrt((double)t->dims[1]), cfg->seed, t->name);
        } else if (!strcmp(base, "w3")) {
            fill_gauss(x, t->count, 1.0 / sqrt((double)t->dims[0]), cfg->seed, t->name);
        } /* biases and item_bias stay 0 */
    }
    mdl_model_refresh_versions(m);
    *out = m;
    return CORE_OK;
}

int mdl_model_clone(mdl_model **out, const mdl_model *src) {
    mdl_model *m;
    int rc = model_alloc(&m, &src->cfg);
    if (rc) return rc;
    memcpy(m->arena, src->arena, src->n_floats * sizeof(float));
    m->model_version = src->model_version;
    m->encoding_version = src->encoding_version;
    *out = m;
    return CORE_OK;
}

void mdl_model_destroy(mdl_model *m) {
    if (!m) return;
    core_free(m->arena);
    core_free(m->adam_m);
    core_free(m->adam_v);
    core_free(m);
}

// ---------------------------------------------------------------------------------------------
// File

static size_t data_offset(int n_tensors) {
    size_t off = HDR_TABLE_OFF + (size_t)n_tensors * TENSOR_ENTRY;
    return (off + 63) & ~(size_t)63;
}

int mdl_model_save(const mdl_model *m, const char *path, int with_adam, char *err,
                   size_t err_size) {
    int adam = with_adam && m->adam_m && m->adam_v;
    size_t doff = data_offset(m->n_tensors);
    size_t pbytes = m->n_floats * sizeof(float);
    size_t total = doff + pbytes * (adam ? 3 : 1) + 8;
    uint8_t *buf = core_calloc(1, total);
    char tmp[4096];
    FILE *f = NULL;
    int rc = CORE_EIO;
    if (!buf) {
        snprintf(err, err_size, "out of memory writing %s", path);
        return CORE_ENOMEM;
    }
    memcpy(buf, MDL_MAGIC, 8);
    uint32_t u32 = MDL_FORMAT_VERSION;
    memcpy(buf + 8, &u32, 4);
    u32 = adam ? FLAG_ADAM : 0;
    memcpy(buf + 12, &u32, 4);
    memcpy(buf + 16, &m->model_version, 8);
    memcpy(buf + 24, &m->encoding_version, 8);
    uint64_t step = adam ? m->adam_step : 0;
    memcpy(buf + 32, &step, 8);
    config_bytes(&m->cfg, buf + HDR_CONFIG_OFF);
    u32 = (uint32_t)m->n_tensors;
    memcpy(buf + 120, &u32, 4);
    u32 = head_flags(&m->cfg);
    memcpy(buf + HDR_HEAD_FLAGS_OFF, &u32, 4);
    for (int i = 0; i < m->n_tensors; i++) {
        const mdl_tensor *t = &m->tensors[i];
        uint8_t *e = buf + HDR_TABLE_OFF + (size_t)i * TENSOR_ENTRY;
        uint64_t off = doff + t->offset * sizeof(float), cnt = t->count;
        memcpy(e, t->name, MDL_NAME_LEN);
        memcpy(e + 32, &t->ndim, 4);
        memcpy(e + 36, t->dims, 16);
        memcpy(e + 52, &off, 8);
        u32 = (uint32_t)cnt;
        memcpy(e + 60, &u32, 4);
    }
    memcpy(buf + doff, m->arena, pbytes);
    if (adam) {
        memcpy(buf + doff + pbytes, m->adam_m, pbytes);
        memcpy(buf + doff + 2 * pbytes, m->adam_v, pbytes);
    }
    uint64_t sum = XXH3_64bits(buf, total - 8);
    memcpy(buf + total - 8, &sum, 8);

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb"))) {
        snprintf(err, err_size, "create %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (fwrite(buf, 1, total, f) != total || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, err_size, "write %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto done;
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = CORE_OK;
done:
    core_free(buf);
    return rc;
}

/* The config of a model file's header (the first HDR_TABLE_OFF bytes), checked. */
static int parse_config(const uint8_t *hdr, uint32_t ver, mdl_config *cfg, const char *path,
                        char *err, size_t err_size) {
    uint32_t u[16];
    memcpy(u, hdr + HDR_CONFIG_OFF, 64);
    memset(cfg, 0, sizeof *cfg);
    cfg->C = u[0], cfg->S = u[1], cfg->tau = u[2], cfg->item_rows = u[3], cfg->cat_rows = u[4];
    cfg->long_kind = u[5], cfg->short_kind = u[6], cfg->temporal_kind = u[7], cfg->n_recent = u[8];
    cfg->n_blocks = u[9], cfg->n_heads = u[10], cfg->ffn_dim = u[11], cfg->tin_buckets = u[12];
    cfg->h1 = u[13], cfg->h2 = u[14], cfg->n_dense = u[15];
    memcpy(&cfg->seed, hdr + HDR_CONFIG_OFF + 64, 8);
    memcpy(&cfg->hash_seed, hdr + HDR_CONFIG_OFF + 72, 8);
    uint32_t hflags;
    memcpy(&hflags, hdr + HDR_HEAD_FLAGS_OFF, 4);
    if ((hflags & ~HEAD_KNOWN) || (ver < 3 && hflags)) {
        snprintf(err, err_size, "model %s: head flags 0x%x at offset %d: %s", path, hflags,
                 HDR_HEAD_FLAGS_OFF,
                 ver < 3 ? "reserved in format version 2, must be 0" : "unknown bits");
        return CORE_EFORMAT;
    }
    cfg->q_short = (hflags & HEAD_Q_SHORT) != 0;
    cfg->sdim_hash = (hflags & HEAD_SDIM_FIELDS) ? MDL_HASH_FIELDS : MDL_HASH_CONCAT;
    cfg->cross = (hflags & HEAD_CROSS) != 0;
    cfg->window = hflags >> HEAD_WINDOW_SHIFT;
    char cerr[200];
    if (mdl_config_check(cfg, cerr, sizeof cerr)) {
        snprintf(err, err_size, "model %s: invalid config: %s", path, cerr);
        return CORE_EFORMAT;
    }
    return CORE_OK;
}

/* Magic, version, config, and the file size the config implies (computed, nothing allocated). */
static int check_header(const uint8_t *hdr, size_t total, const char *path, char *err,
                        size_t err_size) {
    if (memcmp(hdr, MDL_MAGIC, 8) != 0) {
        snprintf(err, err_size, "model %s: bad magic (not a trail model file)", path);
        return CORE_EFORMAT;
    }
    uint32_t ver, flags;
    memcpy(&ver, hdr + 8, 4);
    memcpy(&flags, hdr + 12, 4);
    if (ver < MDL_FORMAT_OLDEST || ver > MDL_FORMAT_VERSION) {
        snprintf(err, err_size, "model %s: format version %u, this build reads versions %d to %d",
                 path, ver, MDL_FORMAT_OLDEST, MDL_FORMAT_VERSION);
        return CORE_EVERSION;
    }
    mdl_config cfg;
    int rc = parse_config(hdr, ver, &cfg, path, err, err_size);
    if (rc) return rc;
    mdl_tensor t[MDL_MAX_TENSORS];
    int n;
    size_t floats = mdl_layout(&cfg, t, &n);
    /* in long double: a crafted config's product must not wrap */
    long double want = (long double)data_offset(n) +
                       (long double)floats * sizeof(float) * ((flags & FLAG_ADAM) ? 3 : 1) + 8;
    if (want != (long double)total) {
        snprintf(err, err_size,
                 "model %s: its header's config implies %.0Lf bytes but the file has %zu "
                 "(truncated, or a corrupt header)",
                 path, want, total);
        return CORE_EFORMAT;
    }
    return CORE_OK;
}

int mdl_model_load(mdl_model **out, const char *path, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    mdl_model *m = NULL;
    int rc = CORE_EFORMAT;
    struct stat sb;
    if (!f) {
        snprintf(err, err_size, "open model %s: %s", path, strerror(errno));
        return CORE_EIO;
    }
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < HDR_TABLE_OFF + 8) {
        snprintf(err, err_size, "model %s: %lld bytes is too short for a model file (truncated?)",
                 path, (long long)sb.st_size);
        fclose(f);
        return CORE_EFORMAT;
    }
    size_t total = (size_t)sb.st_size;
    /* the header first: magic, version and the size its config implies are checked against the
     * file before anything the size of the file (or of the config) is allocated */
    uint8_t hdr[HDR_TABLE_OFF];
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr) {
        snprintf(err, err_size, "read model %s: %s", path, strerror(errno));
        fclose(f);
        return CORE_EIO;
    }
    if ((rc = check_header(hdr, total, path, err, err_size))) {
        fclose(f);
        return rc;
    }
    rc = CORE_EFORMAT;
    if (!(buf = core_malloc(total))) {
        fclose(f);
        snprintf(err, err_size, "model %s: out of memory reading %zu bytes", path, total);
        return CORE_ENOMEM;
    }
    memcpy(buf, hdr, sizeof hdr);
    if (fread(buf + sizeof hdr, 1, total - sizeof hdr, f) != total - sizeof hdr) {
        snprintf(err, err_size, "read model %s: %s", path, strerror(errno));
        rc = CORE_EIO;
        goto fail;
    }
    if (memcmp(buf, MDL_MAGIC, 8) != 0) {
        snprintf(err, err_size, "model %s: bad magic (not a trail model file)", path);
        goto fail;
    }
    uint32_t ver, flags, ntens;
    memcpy(&ver, buf + 8, 4);
    memcpy(&flags, buf + 12, 4);
    if (ver < MDL_FORMAT_OLDEST || ver > MDL_FORMAT_VERSION) {
        snprintf(err, err_size, "model %s: format version %u, this build reads versions %d to %d",
                 path, ver, MDL_FORMAT_OLDEST, MDL_FORMAT_VERSION);
        rc = CORE_EVERSION;
        goto fail;
    }
    uint64_t sum;
    memcpy(&sum, buf + total - 8, 8);
    if (sum != XXH3_64bits(buf, total - 8)) {
        snprintf(err, err_size, "model %s: checksum mismatch (file truncated or corrupt)", path);
        rc = CORE_ECHECKSUM;
        goto fail;
    }
    mdl_config cfg;
    if ((rc = parse_config(buf, ver, &cfg, path, err, err_size))) goto fail;
    if ((rc = model_alloc(&m, &cfg))) {
        snprintf(err, err_size, "model %s: out of memory", path);
        goto fail;
    }
    rc = CORE_EFORMAT;
    memcpy(&ntens, buf + 120, 4);
    size_t doff = data_offset(m->n_tensors);
    size_t pbytes = m->n_floats * sizeof(float);
    int adam = (flags & FLAG_ADAM) != 0;
    if (ntens != (uint32_t)m->n_tensors || total != doff + pbytes * (adam ? 3 : 1) + 8) {
        snprintf(
            err, err_size,
            "model %s: %u tensors in %zu bytes, but its config implies %d tensors in %zu bytes",
            path, ntens, total, m->n_tensors, doff + pbytes * (adam ? 3 : 1) + 8);
        goto fail;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const mdl_tensor *t = &m->tensors[i];
        const uint8_t *e = buf + HDR_TABLE_OFF + (size_t)i * TENSOR_ENTRY;
        uint32_t ndim, dims[4];
        uint64_t off;
        memcpy(&ndim, e + 32, 4);
        memcpy(dims, e + 36, 16);
        memcpy(&off, e + 52, 8);
        if (memcmp(e, t->name, MDL_NAME_LEN) != 0 || ndim != t->ndim ||
            memcmp(dims, t->dims, 16) != 0 || off != doff + t->offset * sizeof(float)) {
            snprintf(err, err_size,
                     "model %s: tensor %d (%.32s) does not match the layout of its config", path, i,
                     (const char *)e);
            goto fail;
        }
    }
    memcpy(m->arena, buf + doff, pbytes);
    if (adam) {
        m->adam_m = core_aligned_alloc(pbytes);
        m->adam_v = core_aligned_alloc(pbytes);
        if (!m->adam_m || !m->adam_v) {
            rc = CORE_ENOMEM;
            snprintf(err, err_size, "model %s: out of memory for optimizer state", path);
            goto fail;
        }
        memcpy(m->adam_m, buf + doff + pbytes, pbytes);
        memcpy(m->adam_v, buf + doff + 2 * pbytes, pbytes);
        memcpy(&m->adam_step, buf + 32, 8);
    }
    uint64_t mv, ev;
    memcpy(&mv, buf + 16, 8);
    memcpy(&ev, buf + 24, 8);
    mdl_model_refresh_versions(m);
    if (mv != m->model_version || ev != m->encoding_version) {
        snprintf(err, err_size, "model %s: stored version ids do not match its contents", path);
        goto fail;
    }
    fclose(f);
    core_free(buf);
    *out = m;
    return CORE_OK;
fail:
    fclose(f);
    core_free(buf);
    mdl_model_destroy(m);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Lookups

uint32_t mdl_item_row(const mdl_model *m, uint64_t item_id) {
    return (uint32_t)(core_hash_id(item_id, m->cfg.hash_seed) % m->cfg.item_rows);
}

uint32_t mdl_cat_row(const mdl_model *m, uint64_t category_id) {
    return (uint32_t)(core_hash_id(category_id, m->cfg.hash_seed + 1) % m->cfg.cat_rows);
}

void mdl_embed(const mdl_model *m, uint64_t item_id, uint64_t category_id, float *out) {
    uint32_t h = m->cfg.C / 2;
    memcpy(out, m->p.item_emb + (size_t)mdl_item_row(m, item_id) * h, h * sizeof(float));
    memcpy(out + h, m->p.cat_emb + (size_t)mdl_cat_row(m, category_id) * h, h * sizeof(float));
}

uint32_t mdl_tin_bucket(const mdl_config *cfg, int64_t gap_s) {
    uint32_t b = 1;
    if (gap_s >= 60) {
        int64_t g = gap_s / 60;
        while (g > 0 && b < cfg->tin_buckets) {
            b++;
            g >>= 1;
        }
    }
    return b;
}

// ---------------------------------------------------------------------------------------------
// Variant names

static const char *long_names[] = {"none", "avgpool", "sdim", "attention"};
static const char *short_names[] = {"none", "selfattn", "din"};
static const char *temporal_names[] = {"none", "tin"};
static const char *hash_names[] = {"concat", "fields"};

const char *mdl_long_name(uint32_t k) {
    return k <= MDL_LONG_ATTN ? long_names[k] : "?";
}
const char *mdl_short_name(uint32_t k) {
    return k <= MDL_SHORT_DIN ? short_names[k] : "?";
}
const char *mdl_temporal_name(uint32_t k) {
    return k <= MDL_TEMPORAL_TIN ? temporal_names[k] : "?";
}
const char *mdl_hash_name(uint32_t k) {
    return k <= MDL_HASH_FIELDS ? hash_names[k] : "?";
}

static int lookup(const char **names, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && !memcmp(names[i], s, len)) return i;
    return -1;
}

int mdl_variant_parse(mdl_config *cfg, const char *spec, char *err, size_t err_size) {
    static const struct {
        const char *name;
        uint32_t l, s, t, x;
    } presets[] = {
        {"din-short", MDL_LONG_NONE, MDL_SHORT_DIN, MDL_TEMPORAL_NONE, 0},
        {"avgpool", MDL_LONG_AVGPOOL, MDL_SHORT_DIN, MDL_TEMPORAL_NONE, 0},
        {"din-long", MDL_LONG_ATTN, MDL_SHORT_DIN, MDL_TEMPORAL_NONE, 0},
        {"sdim", MDL_LONG_SDIM, MDL_SHORT_DIN, MDL_TEMPORAL_NONE, 0},
        {"full", MDL_LONG_SDIM, MDL_SHORT_SELFATTN, MDL_TEMPORAL_TIN, 1},
    };
    const char *p = spec;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        size_t nl = strlen(presets[i].name);
        if (!strncmp(spec, presets[i].name, nl) && (spec[nl] == 0 || spec[nl] == ',')) {
            cfg->long_kind = presets[i].l;
            cfg->short_kind = presets[i].s;
            cfg->temporal_kind = presets[i].t;
            cfg->cross = presets[i].x;
            p = spec + nl + (spec[nl] == ','); /* keys after a preset override it */
            if (!*p && spec[nl] == ',') goto bad;
            break;
        }
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) goto bad;
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        int v;
        if (klen == 4 && !memcmp(p, "long", 4) && (v = lookup(long_names, 4, eq + 1, vlen)) >= 0)
            cfg->long_kind = (uint32_t)v;
        else if (klen == 5 && !memcmp(p, "short", 5) &&
                 (v = lookup(short_names, 3, eq + 1, vlen)) >= 0)
            cfg->short_kind = (uint32_t)v;
        else if (klen == 8 && !memcmp(p, "temporal", 8) &&
                 (v = lookup(temporal_names, 2, eq + 1, vlen)) >= 0)
            cfg->temporal_kind = (uint32_t)v;
        else if (klen == 7 && !memcmp(p, "q_short", 7) && vlen == 1 &&
                 (eq[1] == '0' || eq[1] == '1'))
            cfg->q_short = (uint32_t)(eq[1] - '0');
        else if (klen == 4 && !memcmp(p, "hash", 4) &&
                 (v = lookup(hash_names, 2, eq + 1, vlen)) >= 0)
            cfg->sdim_hash = (uint32_t)v;
        else if (klen == 5 && !memcmp(p, "cross", 5) && vlen == 1 && (eq[1] == '0' || eq[1] == '1'))
            cfg->cross = (uint32_t)(eq[1] - '0');
        else
            goto bad;
        p = end ? end + 1 : p + len;
    }
    return CORE_OK;
bad:
    snprintf(err, err_size,
             "variant '%s': expected a preset (din-short, avgpool, din-long, sdim, full) and/or "
             "long=none|avgpool|sdim|attention,short=none|selfattn|din,temporal=none|tin,"
             "q_short=0|1,hash=concat|fields,cross=0|1",
             spec);
    return CORE_EINVAL;
}

void mdl_variant_str(const mdl_config *cfg, char *buf, size_t cap) {
    int n =
        snprintf(buf, cap, "long=%s,short=%s,temporal=%s,q_short=%d", mdl_long_name(cfg->long_kind),
                 mdl_short_name(cfg->short_kind), mdl_temporal_name(cfg->temporal_kind),
                 cfg->short_kind != MDL_SHORT_NONE && cfg->q_short);
    if (cfg->long_kind == MDL_LONG_SDIM && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, ",hash=%s", mdl_hash_name(cfg->sdim_hash));
    if (cfg->cross && n >= 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, ",cross=1");
}

void mdl_version_hex(uint64_t v, char out[17]) {
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}
