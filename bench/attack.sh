#!/usr/bin/env bash
# bench/attack.sh: the hardening trials, as a careless operator, a crash and a bad disk would run
# them, with one JSON object a trial kind on stdout (progress on stderr):
#   replay_kill9   a file replay killed with SIGKILL at random moments (1 to 3 kills a trial),
#                  then resumed to the end: survived = state and positions byte-identical to one
#                  uninterrupted replay (trail inspect --digest) and the reject file identical
#   worker_kill9   the Kafka worker (`trail encode --brokers ... --until-end` on `trail broker`)
#                  killed with SIGKILL at random moments (1 to 3 kills a trial; a kill that leaves
#                  lag marks, lagging_users > 0 in `trail inspect --digest`, landed between the
#                  two tiers' commits), then run to the topic's end: survived = no lag left and the
#                  state, every tier, byte-identical to the uninterrupted file replay's
#                  (state_digest)
#   byte_flips     a copy of a store with random bytes changed anywhere in data.mdb (values and
#                  LMDB's own pages alike): survived = `trail inspect --verify` and `trail rank` for
#                  every user end with a normal exit status (never a signal), and every changed
#                  user value is reported (verify exits 1) or the flip landed outside the values
#                  (verify exits 0 and every user still ranks)
# More Kafka worker kill -9 trials are in test_pipe_fault (ctest), the malformed inputs the fuzz
# targets (tests/fuzz.sh), the HTTP abuse cases test_serve_abuse, the reloads test_serve_reload.
#
# Usage: bash bench/attack.sh [--replay N] [--worker N] [--flips N]   (defaults 20, 5 and 20)
#   env: TRAIL_BIN (default build/trail), ATTACK_WORK (a temporary directory, removed after)
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIL=${TRAIL_BIN:-build/trail}
TRAIL=$(realpath "$TRAIL")
REPLAY=20
WORKER=5
FLIPS=20
while [ $# -gt 0 ]; do
  case $1 in
    --replay) REPLAY=$2; shift 2 ;;
    --worker) WORKER=$2; shift 2 ;;
    --flips) FLIPS=$2; shift 2 ;;
    *) echo "usage: bash bench/attack.sh [--replay N] [--worker N] [--flips N]" >&2; exit 2 ;;
  esac
done
[ -x "$TRAIL" ] || { echo "attack: $TRAIL not found; build first" >&2; exit 2; }
WORK=${ATTACK_WORK:-$(mktemp -d /tmp/trail-attack-XXXXXX)}
bpid=
trap '[ -n "$bpid" ] && kill $bpid 2>/dev/null; rm -rf "$WORK"' EXIT
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

# --- worker_kill9
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; } # one JSON field of one line
"$TRAIL" broker --partitions 4 >broker.out 2>broker.err &
bpid=$!
for _ in $(seq 100); do [ -s broker.out ] && break; sleep 0.1; done
brokers=$(head -1 broker.out)
ref_state=$(echo "$ref" | field state_digest)
# a group of its own each start (the store, not the group, holds the positions): no rebalance waits
# for a killed member's session to expire
wargs() { echo --brokers "$brokers" --topic "wt$1" --group "wt$1-$RANDOM$RANDOM" --model m.bin \
  --store w --window 300 --batch 200 --until-end; }
kills=0 between=0 same=0
for t in $(seq "$WORKER"); do
  rm -rf w
  # validated: the malformed lines stay out (dead letters would make each commit wait for their
  # acknowledgement, and the file replay never applies them either)
  "$TRAIL" produce --brokers "$brokers" --topic "wt$t" --input ev.jsonl >/dev/null 2>&1 ||
    { echo "attack: producing topic wt$t failed" >&2; exit 1; }
  n=$((1 + RANDOM % 3))
  for _ in $(seq $n); do
    : >worker.log
    # shellcheck disable=SC2046
    "$TRAIL" encode $(wargs "$t") >worker.log 2>&1 &
    pid=$!
    for _ in $(seq 300); do grep -q "pipe: assigned" worker.log && break; sleep 0.05; done
    sleep "0.$(printf '%03d' $((RANDOM % 900)))" # into the stream: 300 commits, a few seconds
    if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
    wait $pid 2>/dev/null || true
    if [ -e w/data.mdb ]; then
      lag=$("$TRAIL" inspect --store w --digest 2>/dev/null | field lagging_users)
      [ "${lag:-0}" -gt 0 ] && between=$((between + 1))
      echo "attack: worker trial $t: killed, ${lag:-0} users lagging" >&2
    fi
  done
  # shellcheck disable=SC2046
  "$TRAIL" encode $(wargs "$t") >worker.log 2>&1 || echo "attack: worker trial $t: the last run failed" >&2
  d=$("$TRAIL" inspect --store w --digest)
  if [ "$(echo "$d" | field state_digest)" = "$ref_state" ] && [ "$(echo "$d" | field lagging_users)" = 0 ]; then
    same=$((same + 1))
  else
    echo "attack: worker trial $t differs from the uninterrupted replay: $d" >&2
  fi
  echo "attack: worker trial $t/$WORKER done" >&2
done
kill $bpid 2>/dev/null || true
wait $bpid 2>/dev/null || true
bpid=
printf '{"trial":"worker_kill9","cases":%d,"kills":%d,"killed_between_tiers":%d,"survived":%d}\n' \
  "$WORKER" "$kills" "$between" "$same"

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
