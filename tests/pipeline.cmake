# Pipeline tests: librdkafka's mock cluster on 127.0.0.1, bounded in count and time.
# Label "long": over 30 s on a 2-core machine (45-60 s here); `ctest -LE long` skips them.
trail_add_test(test_pipe_worker SOURCES test_pipe_worker.c LIBS trail_pipeline LABELS kafka long TIMEOUT 120)
trail_add_test(test_pipe_cli SOURCES test_pipe_cli.c LIBS trail_train LABELS kafka TIMEOUT 120)
# End to end through the CLI (worker processes, kill -9, broker down/up).
trail_add_test(test_pipe_fault SOURCES test_pipe_fault.c LIBS trail_pipeline PkgConfig::LMDB LABELS kafka long TIMEOUT 240)
