# Shared by tests/test_deploy*.sh (sourced, not run): messages, skips, a scratch directory, and
# the steps that start `trail serve` and ask it over HTTP.
# shellcheck shell=bash

NAME=${NAME:-deploy}
say() { printf '%s: %s\n' "$NAME" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
skip() { say "SKIP: $*"; exit 77; } # ctest's SKIP_RETURN_CODE

# A scratch directory removed at exit, after the processes in STOP are stopped, one after the
# other in order. An entry is PID (a child of this shell), or PID:LAUNCHER for a process started
# through unshare/nsenter (the signal goes to PID, the wait to LAUNCHER, which exits with it).
STOP=()
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/trail-$NAME.XXXXXX")
alive() { # PID: running (not gone, not a zombie)
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st%% *}" != Z ]
}
stop() { # ENTRY: SIGTERM, SIGKILL after 20 s, then its exit status
  local pid=${1%%:*} _
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    say "pid $pid ignored SIGTERM for 20 s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "${1##*:}" 2>/dev/null
}
cleanup() {
  local e
  for e in "${STOP[@]}"; do stop "$e" || true; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

# fixture DIR: a small model (DIR/model.bin) and the events of 20 users (DIR/events.jsonl)
fixture() {
  "$TRAIL" model init --out "$1/model.bin" --item-rows 4096 --cat-rows 256 >/dev/null ||
    fail "trail model init"
  "$TRAIL" gen --out "$1/events.jsonl" --users 20 --items 500 --events 2000 >/dev/null 2>&1 ||
    fail "trail gen"
}

# wait_port OUT: the port `trail serve` prints on its first stdout line (file OUT), within 10 s
wait_port() {
  local port="" _
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$1" 2>/dev/null | head -1 || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  echo "$port"
}

# http_status METHOD URL [BODY]: the status code (the body goes to $SCRATCH/last.body)
http_status() {
  local args=(-s -o "$SCRATCH/last.body" -w '%{http_code}' -X "$1" "$2")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' -d "$3")
  curl "${args[@]}" || true
}

# score_status PORT: the status of one /v1/score for user 9 of the fixture
score_status() {
  http_status POST "http://127.0.0.1:$1/v1/score" \
    '{"user_id":9,"ts":1700100000,"candidates":[{"item_id":483,"category_id":10}]}'
}

# child_of PID: the one child of PID (unshare --fork and nsenter run the command as their child)
child_of() {
  local c="" _
  for _ in $(seq 50); do
    c=$(awk '{ print $1 }' "/proc/$1/task/$1/children" 2>/dev/null || true)
    [ -n "$c" ] && break
    sleep 0.1
  done
  echo "$c"
}
