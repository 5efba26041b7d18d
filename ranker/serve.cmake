# trail_serve: HTTP serving (rank_serve), request parsing (rank_request), metrics (rank_metrics)
# and `trail rank` (rank_cli_rank: its candidate lines are rank_request's), `trail serve`
# (serve_cli). Included from ranker/CMakeLists.txt after core.cmake.
add_library(trail_serve STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rank_request.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_serve.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_cli_rank.c
  ${CMAKE_CURRENT_LIST_DIR}/serve_cli.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_bench_serve.c)
target_include_directories(trail_serve PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(trail_serve PUBLIC trail_ranker trail_encoder trail_model trail_schemas
  trail_core PkgConfig::JANSSON Threads::Threads PRIVATE trail_warnings)
