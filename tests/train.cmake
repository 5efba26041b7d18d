# Tests of the training module (train/).
trail_add_test(test_train_gen SOURCES test_train_gen.c LIBS trail_train LABELS unit)
trail_add_test(test_train_metrics SOURCES test_train_metrics.c LIBS trail_train LABELS unit)
trail_add_test(test_train_adam SOURCES test_train_adam.c LIBS trail_train LABELS unit)
trail_add_test(test_train_samples SOURCES test_train_samples.c LIBS trail_train LABELS unit)
# The rest needs the ranker's network (and the encoder's user state it brings).
if(TARGET trail_ranker)
  trail_add_test(test_train_pit SOURCES test_train_pit.c LIBS trail_train trail_ranker trail_encoder LABELS unit)
  trail_add_test(test_train_loop SOURCES test_train_loop.c LIBS trail_train trail_ranker LABELS unit)
  trail_add_test(test_train_cli SOURCES test_train_cli.c LIBS trail_train LABELS unit)
endif()
if(TARGET trail_ranker AND EXISTS ${PROJECT_SOURCE_DIR}/ranker/rank_score.c)
  trail_add_test(test_train_parity SOURCES test_train_parity.c LIBS trail_train trail_ranker trail_encoder LABELS store)
endif()
