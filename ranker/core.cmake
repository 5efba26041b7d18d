# trail_ranker: kernels, the network's forward/backward, scoring, `trail rank` and `trail bench rank`.
add_library(trail_ranker STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rank_blas.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_kernels.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_net.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_score.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_cli.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_cli_rank.c)
target_include_directories(trail_ranker PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(trail_ranker PUBLIC trail_encoder trail_model trail_schemas trail_core
  trail_openblas Threads::Threads m trail_warnings)
