#!/usr/bin/env bash
# The main job end to end on one machine, with the local broker:
#   install dependencies, build, start `trail broker`, import the Taobao sample into a topic,
#   train a model on it (`trail train`), run two encoder workers in one consumer group until they
#   catch up, start `trail serve`, score one user's candidates and print the top items, then stop
#   everything it started and exit 0.
# The sample is $TRAIL_DATA/taobao-userbehavior-head/UserBehavior_head.csv. The build goes to
# build/, everything else it writes to out/quickstart/. Usage: bash deploy/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/out/quickstart
TRAIL=$ROOT/build/trail
DATA=${TRAIL_DATA:-$ROOT/../shared/data}
CSV=$DATA/taobao-userbehavior-head/UserBehavior_head.csv
TOPIC=taobao
PIDS=()

say() { printf 'quickstart: %s\n' "$*"; }
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ $rc -eq 0 ] || say "failed (exit $rc); logs in $OUT"
  exit $rc
}
trap cleanup EXIT INT TERM

bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
rm -rf "$OUT"
mkdir -p "$OUT"

# 1. The local broker (dev only: in-memory mock cluster). Its first stdout line is the bootstrap.
"$TRAIL" broker --partitions 4 --topics "$TOPIC" >"$OUT/broker.out" 2>"$OUT/broker.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$OUT/broker.out" ] && break; sleep 0.1; done
BROKERS=$(head -1 "$OUT/broker.out")
[ -n "$BROKERS" ] || { say "the broker did not start"; exit 1; }
say "broker at $BROKERS"

# 2. The Taobao sample as events, into the topic (keyed by user id).
"$TRAIL" import taobao "$CSV" --out "$OUT/taobao.jsonl"
"$TRAIL" produce --brokers "$BROKERS" --topic "$TOPIC" --input "$OUT/taobao.jsonl"

# 3. A model trained on the sample (pinned Taobao protocol: point-in-time samples, time split,
#    early stopping on validation GAUC). QUICKSTART_EPOCHS bounds the time it takes.
"$TRAIL" train --events "$OUT/taobao.jsonl" --model-out "$OUT/model.bin" --variant full \
  --protocol taobao --window 256 --epochs "${QUICKSTART_EPOCHS:-2}" --json >"$OUT/train.json"
# the validation numbers, whole: "auc=0.912281 gauc=0.902861 logloss=0.355639 calibration=1.000000 ..."
say "trained: $(sed -n 's/.*"valid":{\([^}]*\)}.*/\1/p' "$OUT/train.json" | tr -d '"' | tr ':,' '= ') (model $OUT/model.bin, details in $OUT/train.json)"

# 4. Two encoder workers in one group, until both report caught up on /metrics. Their stores keep
#    the window the model was trained on (256): SDIM's sums and the cross counts depend on it.
GROUP_OPTS=(-X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=500
            -X kafka.max.poll.interval.ms=7000)
WPIDS=()
for w in a b; do
  "$TRAIL" encode --brokers "$BROKERS" --topic "$TOPIC" --group quickstart \
    --model "$OUT/model.bin" --store "$OUT/store-$w" --window 256 --metrics 127.0.0.1:0 \
    "${GROUP_OPTS[@]}" \
    >"$OUT/worker-$w.out" 2>"$OUT/worker-$w.log" &
  WPIDS+=($!)
  PIDS+=($!)
done
port_of() { grep -o 'metrics url=http://127.0.0.1:[0-9]*' "$OUT/worker-$1.log" | tail -1 | sed 's/.*://'; }
caught_up() { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null | grep -q '^trail_pipeline_caught_up 1$'; }
ok=0
for _ in $(seq 240); do
  pa=$(port_of a || true); pb=$(port_of b || true)
  if [ -n "$pa" ] && [ -n "$pb" ] && caught_up "$pa" && caught_up "$pb"; then ok=1; break; fi
  sleep 0.5
done
[ $ok -eq 1 ] || { say "the workers did not catch up in 120 s"; exit 1; }
for w in a b; do
  p=$(port_of $w)
  curl -fsS "http://127.0.0.1:$p/metrics" | grep -E '^trail_pipeline_(applied_total|dead_lettered_total|assigned_partitions) ' |
    sed "s/^/quickstart: worker $w: /"
done
kill -TERM "${WPIDS[@]}"
for pid in "${WPIDS[@]}"; do wait "$pid"; done # SIGTERM drains; each exits 0
say "both workers caught up and drained; stores in $OUT/store-a and $OUT/store-b"

# 5. Serve store a, and score candidates for one of the users that worker a holds.
"$TRAIL" serve --model "$OUT/model.bin" --store "$OUT/store-a" \
  --listen 127.0.0.1:0 --threads 2 >"$OUT/serve.out" 2>"$OUT/serve.log" &
PIDS+=($!)
SERVE_PID=$!
for _ in $(seq 100); do grep -q '^listening on' "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT/serve.out" | head -1)
[ -n "$PORT" ] || { say "trail serve did not start"; exit 1; }
USER_ID=""
# (awk, not head: under pipefail a reader that stops early would fail the pipeline with SIGPIPE)
for u in $(awk -F'[:,]' '$2 != last { last = $2; if (++n > 50) exit; print $2 }' "$OUT/taobao.jsonl"); do
  if "$TRAIL" inspect --store "$OUT/store-a" --user "$u" >/dev/null 2>&1; then USER_ID=$u; break; fi
done
[ -n "$USER_ID" ] || { say "no user found in store a"; exit 1; }
# candidates: 200 distinct items of the sample, as (item, category)
CANDS=$(grep -o '"item_id":[0-9]*,"category_id":[0-9]*' "$OUT/taobao.jsonl" | sort -u |
        awk 'NR <= 200 { printf "%s{%s}", (NR > 1 ? "," : ""), $0 }')
BODY="{\"user_id\": $USER_ID, \"ts\": 1512316800, \"candidates\": [$CANDS]}"
curl -fsS -X POST "http://127.0.0.1:$PORT/v1/score" -H 'Content-Type: application/json' \
  -d "$BODY" >"$OUT/scores.json"
say "user $USER_ID, model $(grep -o '"model_version":"[0-9a-f]*"' "$OUT/scores.json")"
say "top 5 of 200 candidates (item_id category_id score):"
python3 - "$OUT/scores.json" "$CANDS" <<'PY'
import json, sys
scores = json.load(open(sys.argv[1]))["scores"]
cands = json.loads("[" + sys.argv[2] + "]")
for c, s in sorted(zip(cands, scores), key=lambda t: -t[1])[:5]:
    print("quickstart:   %d %d %.4f" % (c["item_id"], c["category_id"], s))
PY
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
say "done"
