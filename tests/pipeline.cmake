# Pipeline tests: librdkafka's mock cluster on 127.0.0.1, bounded in count and time.
trail_add_test(test_pipe_worker SOURCES test_pipe_worker.c LIBS trail_pipeline LABELS kafka TIMEOUT 120)
