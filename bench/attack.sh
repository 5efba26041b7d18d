#!/usr/bin/env bash
# bench/attack.sh: the hardening trials, as a careless operator, a crash and a bad disk would run
# them, with one JSON object a trial kind on stdout (progress on stderr):
#   replay_kill9   a file replay killed with SIGKILL at random moments (1 to 3 kills a trial),
#                  then resumed to the end: survived = state and positions byte-identical to one
#                  uninterrupted replay (trail inspect --digest) and the reject file identical
#   byte_flips     a copy of a store with random bytes changed anywhere in data.mdb (values and
#                  LMDB's own pages alike): survived = `trail inspect --verify` and `trail rank` for
#                  every user end with a normal exit status (never a signal), and every changed
#                  user value is reported (verify exits 1) or the flip landed outside the values
#                  (verify exits 0 and every user still ranks)
# The Kafka worker's kill -9 trials are test_pipe_fault (ctest), the malformed inputs the fuzz
# targets (tests/fuzz.sh), the HTTP abuse cases test_serve_abuse, the reloads test_serve_reload.
#
# Usage: bash bench/attack.sh [--replay N] [--flips N]   (defaults 20 and 20)
#   env: TRAIL_BIN (default build/trail), ATTACK_WORK (a temporary directory, removed after)
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIL=${TRAIL_BIN:-build/trail}
TRAIL=$(realpath "$TRAIL")
REPLAY=20
FLIPS=20
while [ $# -gt 0 ]; do
  case $1 in
    --replay) REPLAY=$2; shift 2 ;;
    --flips) FLIPS=$2; shift 2 ;;
    *) echo "usage: bash bench/attack.sh [--replay N] [--flips N]" >&2; exit 2 ;;
  esac
done
[ -x "$TRAIL" ] || { echo "attack: $TRAIL not found; build first" >&2; exit 2; }
WORK=${ATTACK_WORK:-$(mktemp -d /tmp/trail-attack-XXXXXX)}
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# A small model and 60,000 events over 200 users, one line in 97 malformed (rejects to compare).
"$TRAIL" model init --out m.bin --dim 16 --signatures 4 --bits 3 --item-rows 4096 --cat-rows 64 \
  --seed 7 >/dev/null
awk 'BEGIN { srand(11); for (i = 0; i < 60000; i++) {
       if (i % 97 == 96) { print "{\"user_id\": 1, \"item_id\": \"x\"}"; continue }
       printf "{\"user_id\":%d,\"item_id\":%d,\"category_id\":%d,\"action\":\"click\",\"ts\":%d}\n",
              1 + int(rand() * 200), 1 + int(rand() * 5000), 1 + int(rand() * 50), 1500000000 + i } }' \
  >ev.jsonl
enc() { "$TRAIL" encode --model m.bin --store "$1" --input ev.jsonl --batch 500 --window 300 >/dev/null 2>&1; }
enc ref || { echo "attack: the reference replay failed" >&2; exit 1; }
ref=$("$TRAIL" inspect --store ref --digest)

# --- replay_kill9
kills=0 same=0 mid=0
for t in $(seq "$REPLAY"); do
  rm -rf s
  n=$((1 + RANDOM % 3))
  for _ in $(seq $n); do
    "$TRAIL" encode --model m.bin --store s --input ev.jsonl --batch 500 --window 300 >/dev/null 2>&1 &
    pid=$!
    sleep "0.$(printf '%03d' $((20 + RANDOM % 400)))"
    if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
    wait $pid 2>/dev/null || true
  done
  [ -e s/data.mdb ] && [ "$("$TRAIL" inspect --store s --digest 2>/dev/null)" != "$ref" ] && mid=$((mid + 1))
  enc s || true
  if [ "$("$TRAIL" inspect --store s --digest)" = "$ref" ] && cmp -s s/rejects.jsonl ref/rejects.jsonl; then
    same=$((same + 1))
  else
    echo "attack: replay trial $t differs from the uninterrupted replay" >&2
  fi
  echo "attack: replay trial $t/$REPLAY done" >&2
done
printf '{"trial":"replay_kill9","cases":%d,"kills":%d,"killed_mid_replay":%d,"survived":%d}\n' \
  "$REPLAY" "$kills" "$mid" "$same"

# --- byte_flips
size=$(stat -c %s ref/data.mdb)
printf '1,1\n2,3\n' >cand.txt
ok=0 detected=0 clean=0 crashed=0
for t in $(seq "$FLIPS"); do
  rm -rf f && cp -r ref f
  off=$(( (RANDOM * 32768 + RANDOM) % size ))
  byte=$((1 + RANDOM % 255))
  printf "$(printf '\\%03o' $(( ($(od -An -tu1 -j $off -N1 f/data.mdb) ^ byte) & 255 )))" |
    dd of=f/data.mdb bs=1 seek=$off conv=notrunc status=none
  set +e
  "$TRAIL" inspect --store f --verify >verify.out 2>verify.err
  v=$?
  sig=0
  [ $v -ge 128 ] && sig=1
  ranked=0
  for u in $(seq 200); do
    "$TRAIL" rank --model m.bin --store f --user $u --candidates cand.txt >/dev/null 2>&1
    r=$?
    [ $r -ge 128 ] && sig=1
    [ $r -eq 0 ] && ranked=$((ranked + 1))
  done
  set -e
  if [ $sig -eq 1 ]; then
    crashed=$((crashed + 1))
    echo "attack: flip trial $t (offset $off): a command died by a signal" >&2
  elif [ $v -eq 1 ]; then
    detected=$((detected + 1)); ok=$((ok + 1))
  elif [ $v -eq 0 ] && [ $ranked -eq 200 ]; then
    clean=$((clean + 1)); ok=$((ok + 1))
  else
    echo "attack: flip trial $t (offset $off): verify exit $v, $ranked of 200 users ranked" >&2
  fi
  echo "attack: flip trial $t/$FLIPS done" >&2
done
printf '{"trial":"byte_flips","cases":%d,"reported_damaged":%d,"outside_values":%d,"died_by_signal":%d,"survived":%d}\n' \
  "$FLIPS" "$detected" "$clean" "$crashed" "$ok"
