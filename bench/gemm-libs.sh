#!/usr/bin/env bash
# bench/gemm-libs.sh: trail's serving-head GEMMs against oneDNN and libxsmm, one JSON object on
# stdout (bench/gemm_libs.c says what is timed and how). The bench is a separate program: trail
# itself links neither library.
#
# Usage: bash bench/gemm-libs.sh [gemm_libs arguments: --reps N --warmup N --max-seconds S --seed X
#                                 --only NAME,NAME...]
#   env: TRAIL_BUILD (build dir, default build-gemm; configured Release if absent),
#        JOBS (build jobs, default 2), CC (default cc),
#        DNNL_MAX_CPU_ISA (passed to oneDNN, e.g. AVX2 or AVX512_CORE, to cap its kernels),
#        OPENBLAS_CORETYPE (passed to OpenBLAS, e.g. Prescott, to force its core choice).
# Installs libdnnl-dev and libxsmm-dev with apt-get when missing. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TRAIL_BUILD:-build-gemm}

missing=()
for p in libdnnl-dev libxsmm-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "gemm-libs: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

[ -f "$B/CMakeCache.txt" ] || cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$B" -j"${JOBS:-2}" \
  --target trail_ranker trail_encoder trail_model trail_schemas trail_core >&2

blas_cflags=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/x86_64-linux-gnu/openblas-pthread")
blas_libs=$(pkg-config --libs openblas 2>/dev/null || echo "-lopenblas")
# shellcheck disable=SC2086
${CC:-cc} -std=c11 -O3 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
  -Wmissing-prototypes -Wpointer-arith -Wcast-qual -o "$B/gemm_libs" bench/gemm_libs.c \
  -Iranker -Icore -Imodel -Iencoder -Ischemas $blas_cflags \
  -Wl,--start-group "$B/ranker/libtrail_ranker.a" "$B/encoder/libtrail_encoder.a" \
  "$B/model/libtrail_model.a" "$B/schemas/libtrail_schemas.a" "$B/core/libtrail_core.a" \
  -Wl,--end-group \
  -ldnnl -lxsmm $blas_libs -llmdb -lxxhash -ljansson -lgomp -lpthread -lrt -ldl -lm

# One thread everywhere; DNNL_MAX_CPU_ISA and OPENBLAS_CORETYPE stay as the caller set them.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
if [ -n "${DNNL_MAX_CPU_ISA:-}" ]; then
  export DNNL_MAX_CPU_ISA
  echo "gemm-libs: DNNL_MAX_CPU_ISA=$DNNL_MAX_CPU_ISA" >&2
fi
exec "$B/gemm_libs" "$@"
