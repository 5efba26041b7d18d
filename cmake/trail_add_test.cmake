# trail_add_test(name SOURCES a.c ... LIBS lib ... LABELS unit ... [TIMEOUT s])
# One cmocka executable per test file; OpenBLAS pinned to one thread so runs are repeatable.
function(trail_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${CMOCKA_INCLUDE_DIR} ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_LIBS} ${CMOCKA_LIBRARIES} trail_warnings Threads::Threads)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;TRAIL_BIN=$<TARGET_FILE:trail>;TRAIL_SRC=${PROJECT_SOURCE_DIR};TRAIL_DATA=${PROJECT_SOURCE_DIR}/../shared/data")
endfunction()
