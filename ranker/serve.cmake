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
# TRAIL_HAVE_SERVE) and the serving tests link marked test fakes of whichever is missing
# (tests/serve.cmake).
# Detected by the definitions in the libraries' sources, whatever the files are called.
function(_trail_serve_defines target symbol outvar)
  set(found FALSE)
  if(TARGET ${target})
    get_target_property(srcs ${target} SOURCES)
    get_target_property(dir ${target} SOURCE_DIR)
    foreach(src IN LISTS srcs)
      if(NOT IS_ABSOLUTE "${src}")
        set(src "${dir}/${src}")
      endif()
      if(src MATCHES "\\.c$" AND EXISTS "${src}")
        file(STRINGS "${src}" hits REGEX "^int ${symbol}\\(")
        if(hits)
          set(found TRUE)
        endif()
      endif()
    endforeach()
  endif()
  set(${outvar} ${found} PARENT_SCOPE)
endfunction()
_trail_serve_defines(trail_ranker rank_score _have_score)
_trail_serve_defines(trail_encoder enc_reader_begin _have_reader)
message(STATUS "trail serve: scorer ${_have_score}, store reader ${_have_reader}")
set_property(GLOBAL PROPERTY TRAIL_SERVE_REAL_SCORE ${_have_score})
set_property(GLOBAL PROPERTY TRAIL_SERVE_REAL_STORE ${_have_reader})
if(TARGET trail_ranker)
  target_link_libraries(trail_serve PUBLIC trail_ranker)
endif()
if(_have_score AND _have_reader)
  target_compile_definitions(trail_serve INTERFACE TRAIL_HAVE_SERVE=1)
endif()
