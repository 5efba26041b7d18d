#!/usr/bin/env bash
# The systemd deployment as `cmake --install` lays it out, checked with systemd's own tools:
#   1. install into a scratch DESTDIR (prefix /usr/local);
#   2. `systemd-analyze verify` the installed units (an instance of the encoder template) with the
#      scratch tree as --root, so ExecStart/ExecReload must name executables that exist there;
#   3. `systemd-analyze security --offline=yes` on each: the overall exposure must be below 2.0;
#   4. `systemd-sysusers --dry-run` on the installed sysusers.d entry (where that tool exists);
#   5. run the installed serve unit's ExecStart by hand (the installed binary, the unit's flags and
#      Environment=, with /var/lib/trail moved into the scratch tree and port 8080 replaced by a
#      free one), under PR_SET_MDWE where the kernel has it (what MemoryDenyWriteExecute= enforces),
#      on a store a file replay wrote: /healthz and /v1/score answer 200, the unit's ExecReload
#      reloads the model, SIGTERM exits 0.
# Exit 77 (skipped, with the reason) where systemd-analyze is missing.
# Usage: test_deploy.sh CMAKE_COMMAND BUILD_DIR
set -euo pipefail
NAME=test_deploy
. "$(dirname "$0")/test_deploy_lib.sh"
CMAKE=$1
BUILD=$2

command -v systemd-analyze >/dev/null ||
  skip "systemd-analyze is not installed (Debian: apt-get install systemd); the units are unchecked"
command -v curl >/dev/null || fail "curl is needed to ask the server (deploy/install-deps.sh)"
say "$(systemd-analyze --version | head -1)"

# 1. install
ROOT=$SCRATCH/root
DESTDIR=$ROOT "$CMAKE" --install "$BUILD" --prefix /usr/local >"$SCRATCH/install.log" ||
  { cat "$SCRATCH/install.log"; fail "cmake --install"; }
UNITDIR=$ROOT/usr/local/lib/systemd/system
TRAIL=$ROOT/usr/local/bin/trail
for f in "$TRAIL" "$UNITDIR/trail-serve.service" "$UNITDIR/trail-encoder@.service" \
         "$ROOT/usr/local/lib/sysusers.d/trail.conf"; do
  [ -e "$f" ] || fail "cmake --install did not install ${f#"$ROOT"}"
done

SERVE_UNIT=$UNITDIR/trail-serve.service
exec_line=$(sed -n 's/^ExecStart=//p' "$SERVE_UNIT")
reload_line=$(sed -n 's/^ExecReload=//p' "$SERVE_UNIT")
case " $exec_line " in
  *" --listen "*) ;;
  *) fail "the serve unit's ExecStart has no --listen" ;;
esac
[ -n "$reload_line" ] || fail "the serve unit has no ExecReload"

# 2. verify. The scratch root holds only what trail installs, so it gets what a host has anyway:
# systemd's own units (sysinit.target, multi-user.target, ...) and the ExecReload program (kill).
SYSTEMD_UNITS=$(dirname "$(readlink -f "$(command -v systemd-analyze)")")/../lib/systemd/system
[ -d "$SYSTEMD_UNITS" ] || SYSTEMD_UNITS=/lib/systemd/system
[ -f "$SYSTEMD_UNITS/multi-user.target" ] || fail "systemd's units not found in $SYSTEMD_UNITS"
mkdir -p "$ROOT/usr/lib/systemd"
cp -a "$SYSTEMD_UNITS" "$ROOT/usr/lib/systemd/system"
reload_bin=${reload_line%% *}
[ -x "$reload_bin" ] || fail "ExecReload runs $reload_bin, which this host lacks"
mkdir -p "$ROOT$(dirname "$reload_bin")"
cp "$reload_bin" "$ROOT$reload_bin"
UNITS=(trail-serve.service trail-encoder@1.service)
if ! systemd-analyze verify --root="$ROOT" "${UNITS[@]}" >"$SCRATCH/verify.log" 2>&1 ||
   [ -s "$SCRATCH/verify.log" ]; then
  cat "$SCRATCH/verify.log"
  fail "systemd-analyze verify ${UNITS[*]}"
fi
say "systemd-analyze verify ${UNITS[*]}: clean"

# 3. security: --threshold fails above N tenths, so 19 fails at 2.0 and above
for u in "${UNITS[@]}"; do
  rc=0
  systemd-analyze security --offline=yes --root="$ROOT" --threshold=19 "$u" \
    >"$SCRATCH/security.log" 2>&1 || rc=$?
  score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$SCRATCH/security.log")
  [ -n "$score" ] || { cat "$SCRATCH/security.log"; fail "no exposure score for $u"; }
  if [ $rc -ne 0 ] || awk -v s="$score" 'BEGIN { exit !(s >= 2.0) }'; then
    grep '✗' "$SCRATCH/security.log" || true
    fail "$u: exposure $score, must be below 2.0"
  fi
  say "systemd-analyze security $u: $score"
done

# 4. the user the units run as
if command -v systemd-sysusers >/dev/null; then
  systemd-sysusers --root="$ROOT" --dry-run >"$SCRATCH/sysusers.log" 2>&1 ||
    { cat "$SCRATCH/sysusers.log"; fail "systemd-sysusers --dry-run"; }
  grep -q "Creating user 'trail'" "$SCRATCH/sysusers.log" ||
    { cat "$SCRATCH/sysusers.log"; fail "sysusers.d/trail.conf creates no user trail"; }
  say "systemd-sysusers: $(grep "Creating user 'trail'" "$SCRATCH/sysusers.log")"
fi

# 5. the serve unit's command line
STATE=$SCRATCH/var/lib/trail
read -ra argv <<<"${exec_line//\/var\/lib\/trail/$STATE}"
for i in "${!argv[@]}"; do
  [ "${argv[$i]}" = "--listen" ] && argv[i+1]=${argv[i+1]%:*}:0
done
[ "${argv[0]}" = /usr/local/bin/trail ] || fail "ExecStart runs ${argv[0]}, not the installed trail"
argv[0]=$TRAIL
mkdir -p "$STATE"
fixture "$STATE"
"$TRAIL" encode --model "$STATE/model.bin" --store "$STATE/store" --input "$STATE/events.jsonl" \
  --window 256 >/dev/null || fail "trail encode (the store serve reads)"
envs=()
while read -r e; do envs+=("$e"); done < <(sed -n 's/^Environment=//p' "$SERVE_UNIT")
mdwe=()
# PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1), kept across execve: as MemoryDenyWriteExecute=
MDWE_PY='import ctypes, os, sys
if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0): sys.exit(3)
os.execv(sys.argv[1], sys.argv[1:])'
if command -v python3 >/dev/null && python3 -c "$MDWE_PY" /bin/true 2>/dev/null; then
  mdwe=(python3 -c "$MDWE_PY")
  say "serve runs with PR_SET_MDWE (no writable+executable memory), as MemoryDenyWriteExecute=yes"
else
  say "this kernel (or no python3) cannot set PR_SET_MDWE: MemoryDenyWriteExecute is not exercised"
fi
say "running: ${envs[*]} ${argv[*]}"
env "${envs[@]}" "${mdwe[@]}" "${argv[@]}" >"$SCRATCH/serve.out" 2>"$SCRATCH/serve.log" &
SERVE=$!
STOP=("$SERVE")
port=$(wait_port "$SCRATCH/serve.out")
[ -n "$port" ] || { cat "$SCRATCH/serve.log"; fail "the serve unit's command did not start"; }
st=$(http_status GET "http://127.0.0.1:$port/healthz")
[ "$st" = 200 ] || { cat "$SCRATCH/serve.log"; fail "/healthz answered $st"; }
say "/healthz on 127.0.0.1:$port: $st $(cat "$SCRATCH/last.body")"
st=$(score_status "$port")
[ "$st" = 200 ] || { cat "$SCRATCH/serve.log"; fail "/v1/score answered $st"; }
say "/v1/score: $st $(cat "$SCRATCH/last.body")"
read -ra reload <<<"${reload_line//\$MAINPID/$SERVE}"
"${reload[@]}" || fail "ExecReload (${reload[*]}) failed"
for _ in $(seq 100); do grep -q 'serve: reloaded' "$SCRATCH/serve.log" && break; sleep 0.1; done
grep -q 'serve: reloaded' "$SCRATCH/serve.log" ||
  { cat "$SCRATCH/serve.log"; fail "ExecReload did not reload"; }
say "ExecReload: $(grep -o 'serve: reloaded path=[^ ]*' "$SCRATCH/serve.log")"
rc=0
stop "$SERVE" || rc=$?
STOP=()
[ $rc -eq 0 ] || { cat "$SCRATCH/serve.log"; fail "serve exited $rc on SIGTERM"; }
say "ok"
