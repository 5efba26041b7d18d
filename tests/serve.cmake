# Serving tests, against the real scorer and store.
trail_add_test(test_serve_request SOURCES test_serve_request.c LIBS trail_serve LABELS unit TIMEOUT 60)
trail_add_test(test_serve_metrics SOURCES test_serve_metrics.c LIBS trail_serve LABELS unit TIMEOUT 60)
trail_add_test(test_serve_http SOURCES test_serve_http.c LIBS trail_serve LABELS serve TIMEOUT 120)
trail_add_test(test_serve_reload SOURCES test_serve_reload.c LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 120)
trail_add_test(test_serve_cli SOURCES test_serve_cli.c LIBS trail_serve LABELS serve TIMEOUT 120)
add_dependencies(test_serve_cli trail)
# `trail bench serve` through the CLI, briefly
trail_add_test(test_bench_serve SOURCES test_bench_serve.c LIBS trail_serve LABELS serve TIMEOUT 180)
add_dependencies(test_bench_serve trail)
# Malformed requests answered in JSON; connection limits and read deadlines keep /healthz up
trail_add_test(test_serve_abuse SOURCES test_serve_abuse.c LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 60)
add_dependencies(test_serve_abuse trail)
# A storm of SIGHUPs (OpenBLAS's threads on) never kills `trail serve`; reloads are coalesced
trail_add_test(test_serve_signals SOURCES test_serve_signals.c LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 60)
add_dependencies(test_serve_signals trail)
# Admin endpoints only on the admin listener (Unix socket by default; TCP with a bearer token)
trail_add_test(test_serve_admin SOURCES test_serve_admin.c LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 60)
add_dependencies(test_serve_admin trail)
# What an operator reads: --log-level, X-Request-Id, the access log, rate-limited client errors
trail_add_test(test_serve_logs SOURCES test_serve_logs.c LIBS trail_serve
  LABELS "serve;tsan" TIMEOUT 60)
add_dependencies(test_serve_logs trail)
# Requests the HTTP layer refuses while reading them (request line, version, headers, framing,
# limits) are answered in JSON, counted and logged; also the Kafka worker's metrics endpoint
trail_add_test(test_serve_malformed SOURCES test_serve_malformed.c LIBS trail_serve trail_pipeline
  LABELS "serve;tsan" TIMEOUT 60)
