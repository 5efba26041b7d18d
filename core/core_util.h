/* core_util.h: small inline helpers used everywhere: id hashing, a seeded RNG, clocks.
 *
 * The RNG is xoshiro256** seeded through splitmix64: fixed, documented algorithms, so a seed gives
 * the same stream on every machine (models, synthetic data and negative sampling depend on it).
 */
#ifndef TRAIL_CORE_UTIL_H
#define TRAIL_CORE_UTIL_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

/* Per-CPU clones of a hot loop (AVX-512 / AVX2 / baseline, picked at load time by an ifunc).
 * ThreadSanitizer runs ifunc resolvers before its own start-up and crashes there, so a TSan
 * build gets the baseline loop only. */
#if defined(__SANITIZE_THREAD__)
#define CORE_CLONES_AVX512
#define CORE_CLONES_AVX2
#else
#define CORE_CLONES_AVX512 __attribute__((target_clones("avx512f", "avx2", "default")))
#define CORE_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#endif

/** @brief Hash an id (as 8 little-endian bytes) with a seed: XXH3-64. The row of an id in a table
 *  of R rows is core_hash_id(id, seed) % R. */
static inline uint64_t core_hash_id(uint64_t id, uint64_t seed) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(id >> (8 * i));
    return XXH3_64bits_withSeed(b, 8, seed);
}

typedef struct core_rng {
    uint64_t s[4];
} core_rng;

static inline uint64_t core_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void core_rng_seed(core_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = core_splitmix64(&seed);
}

static inline uint64_t core_rng_next(core_rng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/** @brief Uniform double in [0, 1) with 53 random bits. */
static inline double core_rng_uniform(core_rng *r) {
    return (double)(core_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/** @brief Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-32 for n <
 * 2^32). */
static inline uint64_t core_rng_below(core_rng *r, uint64_t n) {
    __extension__ typedef unsigned __int128 u128;
    return (uint64_t)(((u128)core_rng_next(r) * n) >> 64);
}

/** @brief Standard normal by Box-Muller (one value per call; the pair's second is discarded so that
 *  the stream depends on the call count alone). */
static inline double core_rng_gauss(core_rng *r) {
    double u1 = core_rng_uniform(r), u2 = core_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static inline int64_t core_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static inline int64_t core_wall_s(void) {
    return (int64_t)time(NULL);
}

static inline double core_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* qsort comparator of int64_t, ascending */
static inline int core_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..100) of n >= 1 sorted nanosecond samples, in microseconds. */
static inline double core_pct_us(const int64_t *sorted, size_t n, double p) {
    long k = (long)ceil(p / 100.0 * (double)n) - 1;
    if (k < 0) k = 0;
    if ((size_t)k >= n) k = (long)n - 1;
    return (double)sorted[k] / 1e3;
}

#endif
