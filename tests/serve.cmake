# Serving tests. While the real scorer and store are not built (see ranker/serve.cmake), the
# end-to-end tests link test_serve_fake.c, a marked test fake of rank_score.h and enc_store.h.
get_property(_serve_real GLOBAL PROPERTY TRAIL_SERVE_REAL)
if(_serve_real)
  set(SERVE_E2E_SRCS "")
else()
  set(SERVE_E2E_SRCS test_serve_fake.c)
endif()
trail_add_test(test_serve_request SOURCES test_serve_request.c LIBS trail_serve LABELS unit TIMEOUT 60)
trail_add_test(test_serve_metrics SOURCES test_serve_metrics.c LIBS trail_serve LABELS unit TIMEOUT 60)
trail_add_test(test_serve_http SOURCES test_serve_http.c ${SERVE_E2E_SRCS} LIBS trail_serve
  LABELS serve TIMEOUT 120)
trail_add_test(test_serve_reload SOURCES test_serve_reload.c ${SERVE_E2E_SRCS} LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 120)
