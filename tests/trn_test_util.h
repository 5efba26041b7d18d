/* trn_test_util.h: a small synthetic training set for the train tests (trail gen's generator
 * built into samples in memory). */
#ifndef TRAIL_TRN_TEST_UTIL_H
#define TRAIL_TRN_TEST_UTIL_H

#include "core_alloc.h"
#include "trn_gen.h"
#include "trn_samples.h"

/* @return 0, or -1 if generation or the build failed */
static inline int trn_test_data(trn_data **out, uint32_t users, uint32_t items, uint64_t events,
                                uint32_t days, uint64_t seed) {
    trn_gen_conf gc;
    trn_data_conf dc;
    sch_event *ev;
    size_t n;
    char err[256];
    trn_gen_conf_default(&gc);
    gc.users = users, gc.items = items, gc.events = events, gc.days = days, gc.seed = seed;
    if (trn_gen_events(&gc, &ev, &n, NULL, err, sizeof err)) return -1;
    trn_data_conf_default(&dc);
    int rc = trn_data_build(out, ev, n, &dc, err, sizeof err);
    core_free(ev);
    return rc ? -1 : 0;
}

#endif
