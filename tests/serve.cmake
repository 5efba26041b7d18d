# Serving tests. Until the real scorer and store are built (see ranker/serve.cmake), the tests that
# need them link marked test fakes: test_serve_fake_score.c (rank_score.h) and
# test_serve_fake_store.c (enc_store.h), each only while its real counterpart is missing.
get_property(_real_score GLOBAL PROPERTY TRAIL_SERVE_REAL_SCORE)
get_property(_real_store GLOBAL PROPERTY TRAIL_SERVE_REAL_STORE)
set(SERVE_E2E_SRCS "")
if(NOT _real_score)
  list(APPEND SERVE_E2E_SRCS test_serve_fake_score.c)
endif()
if(NOT _real_store)
  list(APPEND SERVE_E2E_SRCS test_serve_fake_store.c)
endif()
trail_add_test(test_serve_request SOURCES test_serve_request.c LIBS trail_serve LABELS unit TIMEOUT 60)
trail_add_test(test_serve_metrics SOURCES test_serve_metrics.c ${SERVE_E2E_SRCS} LIBS trail_serve
  LABELS unit TIMEOUT 60)
trail_add_test(test_serve_http SOURCES test_serve_http.c ${SERVE_E2E_SRCS} LIBS trail_serve
  LABELS serve TIMEOUT 120)
trail_add_test(test_serve_reload SOURCES test_serve_reload.c ${SERVE_E2E_SRCS} LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 120)
trail_add_test(test_serve_cli SOURCES test_serve_cli.c ${SERVE_E2E_SRCS} LIBS trail_serve
  LABELS serve TIMEOUT 120)
if(_real_score AND _real_store)
  add_dependencies(test_serve_cli trail)
else()
  # a test-only host of `serve`, linked with the test fakes (never the trail binary)
  add_executable(test_serve_cli_host test_serve_cli_main.c ${SERVE_E2E_SRCS})
  target_link_libraries(test_serve_cli_host PRIVATE trail_serve trail_warnings)
  add_dependencies(test_serve_cli test_serve_cli_host)
  set_property(TEST test_serve_cli APPEND PROPERTY ENVIRONMENT
    "TRAIL_SERVE_BIN=$<TARGET_FILE:test_serve_cli_host>")
endif()
