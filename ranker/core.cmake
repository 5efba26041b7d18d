# trail_ranker: kernels, the network's forward/backward, scoring, `trail rank` and `trail bench rank`.
add_library(trail_ranker STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rank_blas.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_kernels.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_net.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_score.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_cli.c)
target_include_directories(trail_ranker PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(trail_ranker PUBLIC trail_encoder trail_model trail_schemas trail_core
  trail_openblas Threads::Threads m trail_warnings)
# `trail rank` reads the encoder's LMDB store: built once encoder/enc_store.c is in the tree (it
# lands on its own branch); TRAIL_HAVE_RANK_CMD tells cli/trail.c to list the command.
if(EXISTS ${PROJECT_SOURCE_DIR}/encoder/enc_store.c)
  target_sources(trail_ranker PRIVATE ${CMAKE_CURRENT_LIST_DIR}/rank_cli_rank.c)
  target_compile_definitions(trail_ranker PUBLIC TRAIL_HAVE_RANK_CMD=1)
endif()
