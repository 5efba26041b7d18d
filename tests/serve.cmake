# Serving tests. While the real scorer and store are not built (see ranker/serve.cmake), the
# end-to-end tests link test_serve_fake.c, a marked test fake of rank_score.h and enc_store.h.
get_property(_serve_real GLOBAL PROPERTY TRAIL_SERVE_REAL)
if(_serve_real)
  set(SERVE_E2E_SRCS "")
else()
  set(SERVE_E2E_SRCS test_serve_fake.c)
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
if(_serve_real)
  add_dependencies(test_serve_cli trail)
else()
  # a test-only host of `serve`, linked with the test fake (never the trail binary)
  add_executable(test_serve_cli_host test_serve_cli_main.c test_serve_fake.c)
  target_link_libraries(test_serve_cli_host PRIVATE trail_serve trail_warnings)
  add_dependencies(test_serve_cli test_serve_cli_host)
  set_property(TEST test_serve_cli APPEND PROPERTY ENVIRONMENT
    "TRAIL_SERVE_BIN=$<TARGET_FILE:test_serve_cli_host>")
endif()
