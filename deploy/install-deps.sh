#!/usr/bin/env bash
# Install every Debian package trail needs to build, test and run. Idempotent and non-interactive:
# packages already present are left alone, and apt-get update runs only when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  librdkafka-dev        # Kafka client (consumer groups, producer, mock cluster for dev/tests)
  liblmdb-dev lmdb-utils  # per-user encoder state; mdb_stat/mdb_dump for operators
  libopenblas-dev       # sgemm for training and the fp32 serving path
  libxxhash-dev         # XXH3 for id hashing and checksums
  libcmocka-dev         # unit tests
  libjansson-dev        # JSON parsing with line/column errors
  clang libclang-rt-14-dev  # libFuzzer: request, events, model file, importers, worker config
  clang-format          # tests/format.sh: the code as .clang-format writes it
  kcat curl             # kcat: Kafka CLI for operators (no script runs it); curl: quickstart, tests
  python3               # small helpers in bench/ scripts and the quickstart
  systemd               # systemd-analyze, systemd-sysusers: tests/test_deploy.sh checks the units
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
