# trail_serve: HTTP serving (rank_serve), request parsing (rank_request), metrics (rank_metrics)
# and `trail serve` (serve_cli). Included from ranker/CMakeLists.txt after core.cmake.
add_library(trail_serve STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rank_request.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_serve.c
  ${CMAKE_CURRENT_LIST_DIR}/serve_cli.c)
target_include_directories(trail_serve PUBLIC ${CMAKE_CURRENT_LIST_DIR} ${PROJECT_SOURCE_DIR}/cli)
target_link_libraries(trail_serve PUBLIC trail_encoder trail_model trail_schemas trail_core
  PkgConfig::MHD PkgConfig::JANSSON Threads::Threads PRIVATE trail_warnings)

# The server calls rank_score (trail_ranker) and the store's readers (trail_encoder's enc_store.c).
# Until both are built, `trail serve` stays out of the CLI (its row in cli/trail.c is compiled under
# TRAIL_HAVE_SERVE) and the serving tests link a marked test fake instead (tests/serve.cmake).
set(_serve_real FALSE)
if(TARGET trail_ranker AND TARGET trail_encoder)
  get_target_property(_enc_srcs trail_encoder SOURCES)
  get_target_property(_rank_srcs trail_ranker SOURCES)
  if("${_enc_srcs}" MATCHES "enc_store\\.c" AND "${_rank_srcs}" MATCHES "rank_score\\.c")
    set(_serve_real TRUE)
  endif()
endif()
set_property(GLOBAL PROPERTY TRAIL_SERVE_REAL ${_serve_real})
if(_serve_real)
  target_link_libraries(trail_serve PUBLIC trail_ranker)
  target_compile_definitions(trail_serve INTERFACE TRAIL_HAVE_SERVE=1)
endif()
