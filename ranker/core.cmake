# trail_ranker: kernels, the network's forward/backward, scoring, `trail bench rank`.
add_library(trail_ranker STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rank_blas.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_kernels.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_net.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_score.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_cli.c)
target_include_directories(trail_ranker PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(trail_ranker PUBLIC trail_encoder trail_model trail_schemas trail_core
  trail_openblas Threads::Threads m trail_warnings)
# The serving engine's per-path GEMMs, each file compiled for its instruction set and called only
# after a run-time check (rank_isa.c): the build machine's CPU does not matter.
target_sources(trail_ranker PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/rank_isa.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_engine.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_qcache.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_avx2.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_avx512.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_amx.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_vnni.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_avx2int.c)
set(TRAIL_AVX512_FLAGS -mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_avx2.c
  ${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_avx2int.c PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_vnni.c PROPERTIES
  COMPILE_OPTIONS "${TRAIL_AVX512_FLAGS};-mavx512vnni")
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_avx512.c PROPERTIES
  COMPILE_OPTIONS "${TRAIL_AVX512_FLAGS}")
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/rank_pgemm_amx.c PROPERTIES
  COMPILE_OPTIONS "${TRAIL_AVX512_FLAGS};-mamx-tile;-mamx-bf16")
