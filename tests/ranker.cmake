# The ranker's tests (trail_ranker): kernels, whole-network gradients, scoring.
trail_add_test(test_rank_kernels SOURCES test_rank_kernels.c LIBS trail_ranker LABELS unit grad)
trail_add_test(test_rank_grad SOURCES test_rank_grad.c LIBS trail_ranker LABELS grad)
trail_add_test(test_rank_pgemm SOURCES test_rank_pgemm.c LIBS trail_ranker LABELS unit)
trail_add_test(test_rank_paths SOURCES test_rank_paths.c LIBS trail_ranker LABELS unit)
trail_add_test(test_rank_score SOURCES test_rank_score.c LIBS trail_ranker LABELS unit)
# `trail rank` against a real store
trail_add_test(test_rank_cli SOURCES test_rank_cli.c LIBS trail_ranker LABELS store)
