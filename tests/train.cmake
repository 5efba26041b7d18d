# Tests of the training module (train/).
trail_add_test(test_train_gen SOURCES test_train_gen.c LIBS trail_train LABELS unit)
trail_add_test(test_train_metrics SOURCES test_train_metrics.c LIBS trail_train LABELS unit)
trail_add_test(test_train_adam SOURCES test_train_adam.c LIBS trail_train LABELS unit)
trail_add_test(test_train_samples SOURCES test_train_samples.c LIBS trail_train LABELS unit)
