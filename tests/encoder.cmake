# Encoder tests: SimHash and the update rule (unit), the LMDB store (store), the CLI as a child
# process (store; includes kill -9 crash safety), one writer per store (store).
trail_add_test(test_enc_simhash SOURCES test_enc_simhash.c LIBS trail_encoder LABELS unit)
trail_add_test(test_enc_state SOURCES test_enc_state.c LIBS trail_encoder LABELS unit)
trail_add_test(test_enc_store SOURCES test_enc_store.c LIBS trail_encoder LABELS store)
trail_add_test(test_enc_cli SOURCES test_enc_cli.c LIBS trail_encoder LABELS store)
trail_add_test(test_enc_lock SOURCES test_enc_lock.c LIBS trail_encoder LABELS store)
trail_add_test(test_loud SOURCES test_loud.c LIBS trail_encoder PkgConfig::LMDB LABELS store TIMEOUT 120)
trail_add_test(test_enc_resume SOURCES test_enc_resume.c LIBS trail_encoder LABELS store)
# checksummed user records and window chunks: damage names one user and costs only that user
trail_add_test(test_enc_integrity SOURCES test_enc_integrity.c LIBS trail_pipeline trail_serve PkgConfig::LMDB LABELS store)
