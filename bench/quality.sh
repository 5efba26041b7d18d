#!/usr/bin/env bash
# bench/quality.sh: the quality table (docs/QUALITY.md). Trains and evaluates the five variants
# (din-short, avgpool, din-long, sdim, full) and full without its cross statistics (full,cross=0:
# the issue's SDIM + selfattn + TIN) with 3 seeds on five sets:
#   taobao     the Taobao head, pinned protocol (trail train --protocol taobao: one popularity
#              negative per positive, long 256, short 16, 80/10/10 by time)
#   taobao-sparse  the same file cut to each user's first 8 behaviors (by time), same protocol
#   movielens  MovieLens latest-small, the same next-behavior protocol (one negative, 256, 16)
#   synthetic  a `trail gen` stream whose planted long-term interests matter (impressions carry the
#              true probability, so the oracle AUC is known)
#   resurfacing  `trail gen --world resurfacing`: interests return in bursts weeks apart, items
#              rarely repeat (docs/SYNTHETIC.md); impressions with their true probability
# Every run uses the same hyperparameters (below); nothing is tuned per set or per variant.
# Training runs to convergence: up to 4 epochs, early stopping after 2 evaluations without a
# better valid GAUC, the best evaluation's model kept (trail train restores it at the end).
# The seed changes initialization, negative sampling and shuffling; the data are fixed.
#
# Usage: bash bench/quality.sh [--quick] [--paths]
#   env: TRAIL_BIN (default build/trail), QUALITY_BUDGET_S (7200: runs that would start after
#   the budget is spent are skipped and the table says so; the five sets took about 100 minutes
#   of runs for 3 seeds on 2 shared cores), QUALITY_SEEDS ("1 2 3"), QUALITY_SETS (all five),
#   QUALITY_OUT (docs/QUALITY.md), QUALITY_WORK (a temporary directory),
#   QUALITY_THREADS (2: trail train --threads; 1 on a machine shared with other jobs),
#   QUALITY_KEEP (out/quality-models; with --quick, QUALITY_WORK/models): where the full models
#   are kept, as SET-full-SEED.model with SET-full-SEED.args (what trained it) beside it,
#   QUALITY_VARIANTS (the six below), QUALITY_TRAIN_EXTRA (more trail train options, given before
#   the shared ones, e.g. "--hidden 64,32"; the table's header shows them). To compare one change
#   on the full model, write the table elsewhere and keep its models apart:
#     QUALITY_VARIANTS=full QUALITY_TRAIN_EXTRA="--hidden 64,32" QUALITY_OUT=/tmp/q.md \
#     QUALITY_KEEP=/tmp/q-models bash bench/quality.sh
#   --quick: one seed, small synthetic set, one epoch: checks the script, not the models.
#   --paths: the serving compute paths (ranker/rank_isa.h) against fp32 instead of the main table:
#   for each set and seed, the kept full model (trained now, with the same arguments, when it is
#   absent or was trained on other arguments or data) scores the test split with
#   `trail eval --paths`; writes the "Serving paths" section of QUALITY_OUT (replaced if there,
#   appended if not) and leaves the rest of the file as it is. The main run keeps that section.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIL=${TRAIL_BIN:-build/trail}
BUDGET=${QUALITY_BUDGET_S:-7200}
SEEDS=${QUALITY_SEEDS:-"1 2 3"}
OUT=${QUALITY_OUT:-docs/QUALITY.md}
DATA=${TRAIL_DATA:-../shared/data}
WORK=${QUALITY_WORK:-$(mktemp -d /tmp/trail-quality-XXXXXX)}
VARIANTS=${QUALITY_VARIANTS:-"din-short avgpool din-long sdim full full,cross=0"}
SETS=${QUALITY_SETS:-"taobao taobao-sparse movielens synthetic resurfacing"}
EPOCHS=4
THREADS=${QUALITY_THREADS:-2}
GEN_ARGS="--users 1000 --items 20000 --events 400000 --seed 1"
RES_ARGS="--world resurfacing --users 1500 --items 200000 --events 450000 --seed 1"
QUICK=0
PATHS=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --paths) PATHS=1 ;;
    *) echo "usage: bash bench/quality.sh [--quick] [--paths]" >&2; exit 2 ;;
  esac
done
KEEP=${QUALITY_KEEP:-out/quality-models}
if [ "$QUICK" = 1 ]; then
  KEEP=${QUALITY_KEEP:-$WORK/models}  # a check of the script never replaces the kept models
  SEEDS=1
  EPOCHS=1
  GEN_ARGS="--users 100 --items 2000 --events 30000 --seed 1"
  RES_ARGS="--world resurfacing --users 100 --items 20000 --events 30000 --seed 1"
  SETS=${QUALITY_SETS:-synthetic}
fi
# The shared hyperparameters (TIN's clip 5; L2 on touched embedding rows; early stopping on valid
# GAUC, evaluated twice per epoch, patience 2, the best evaluation kept).
TRAIN_ARGS="${QUALITY_TRAIN_EXTRA:+$QUALITY_TRAIN_EXTRA }--epochs $EPOCHS --batch 256 --lr 1e-3 --clip 5 --l2 1e-3 --evals-per-epoch 2 --patience 2
  --item-rows 131072 --cat-rows 8192 --window 256 --recent 16 --threads $THREADS"
export OPENBLAS_NUM_THREADS=1   # the trainer's own threads use the cores

[ -x "$TRAIL" ] || { echo "quality: $TRAIL not found; build first (cmake --build build)" >&2; exit 2; }
mkdir -p "$WORK"
LOG=$WORK/quality.log
TSV=$WORK/results.tsv
: >"$TSV"
echo "quality: work directory $WORK (log: $LOG)"

# ---- data (only the sets asked for)
has_set() { case " $SETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if has_set taobao || has_set taobao-sparse; then
  "$TRAIL" import taobao "$DATA/taobao-userbehavior-head/UserBehavior_head.csv" --out "$WORK/taobao.jsonl" >>"$LOG" 2>&1
fi
if has_set taobao-sparse; then
  # each user's first 8 behaviors by (time, file order): user and ts are the import's first and
  # last keys
  awk '{ u = $0; sub(/^\{"user_id":/, "", u); sub(/,.*/, "", u)
         t = $0; sub(/.*"ts":/, "", t); sub(/[,}].*/, "", t); print u "\t" t "\t" $0 }' "$WORK/taobao.jsonl" |
    sort -s -t"$(printf '\t')" -k1,1n -k2,2n |
    awk -F'\t' '$1 != u { u = $1; k = 0 } ++k <= 8 { print $3 }' >"$WORK/taobao-sparse.jsonl"
  echo "quality: taobao-sparse: $(wc -l <"$WORK/taobao-sparse.jsonl") behaviors" >>"$LOG"
fi
if has_set movielens; then
  "$TRAIL" import movielens "$DATA/movielens-latest-small/ratings.csv" --out "$WORK/movielens.jsonl" >>"$LOG" 2>&1
fi
# shellcheck disable=SC2086
if has_set synthetic; then "$TRAIL" gen $GEN_ARGS --out "$WORK/synthetic.jsonl" >>"$LOG" 2>&1; fi
# shellcheck disable=SC2086
if has_set resurfacing; then "$TRAIL" gen $RES_ARGS --out "$WORK/resurfacing.jsonl" >>"$LOG" 2>&1; fi

proto_args() {
  case $1 in
    taobao | taobao-sparse) echo "--protocol taobao" ;;
    movielens) echo "--protocol next --negatives 1" ;;
    synthetic | resurfacing) echo "--protocol impressions" ;;
  esac
}

json_num() { # json key -> number (or empty); the report's own keys, before its by_history part
  sed -n "s/.*\"$2\":\([-0-9.eE+a-z]*\).*/\1/p" <<<"${1%%,\"by_history\"*}"
}
kind_auc() { # eval JSON, kind -> that kind of positive's AUC against all negatives (or nan)
  local v
  v=$(sed -n "s/.*\"$2\":{\"positives\":[0-9]*,\"auc\":\([-0-9.eE+a-z]*\)}.*/\1/p" <<<"$1")
  [ -n "$v" ] && [ "$v" != null ] && echo "$v" || echo nan
}

# ---- kept full models
model_args() { # set, seed -> what a kept full model must have been trained with, on which data
  echo "train --variant full --seed $2 $(proto_args "$1") $(echo $TRAIN_ARGS)"
  echo "events $1 $(cksum <"$WORK/$1.jsonl")"
}
keep_model() { # model file, set, seed, train JSON: move it to KEEP with what trained it
  mkdir -p "$KEEP"
  mv -f "$1" "$KEEP/$2-full-$3.model"
  model_args "$2" "$3" >"$KEEP/$2-full-$3.args"
  printf '%s\n' "$4" >"$KEEP/$2-full-$3.train.json"
}

# ---- --paths: the serving compute paths against fp32 on the kept full models
if [ "$PATHS" = 1 ]; then
  PTSV=$WORK/paths.tsv
  : >"$PTSV"
  unavailable=
  start=$(date +%s)
  trained=0
  runs=0
  for seed in $SEEDS; do
    for set in $SETS; do
      if [ $(($(date +%s) - start)) -ge "$BUDGET" ]; then
        echo "quality: budget of ${BUDGET}s spent; skipping paths of $set seed $seed" | tee -a "$LOG"
        printf '%s\t%s\tskipped\n' "$set" "$seed" >>"$PTSV"
        continue
      fi
      model=$KEEP/$set-full-$seed.model
      pa=$(proto_args "$set")
      runs=$((runs + 1))
      if [ -f "$model" ] && [ "$(cat "$KEEP/$set-full-$seed.args" 2>/dev/null)" = "$(model_args "$set" "$seed")" ]; then
        echo "quality: paths: $set seed $seed: kept model $model" | tee -a "$LOG"
      else
        echo "quality: paths: $set seed $seed: training full (no kept model with these arguments)" | tee -a "$LOG"
        # shellcheck disable=SC2086
        if ! tr=$("$TRAIL" train --events "$WORK/$set.jsonl" $pa --variant full --seed "$seed" \
                  --model-out "$WORK/$set-full-$seed.model" $TRAIN_ARGS --json 2>>"$LOG"); then
          printf '%s\t%s\tfailed\n' "$set" "$seed" >>"$PTSV"
          continue
        fi
        echo "  train: $tr" >>"$LOG"
        keep_model "$WORK/$set-full-$seed.model" "$set" "$seed" "$tr"
        trained=$((trained + 1))
      fi
      # shellcheck disable=SC2086
      if ! ev=$("$TRAIL" eval --model "$model" --events "$WORK/$set.jsonl" $pa --seed "$seed" --window 256 \
                --split test --paths --json 2>>"$LOG"); then
        printf '%s\t%s\tfailed\n' "$set" "$seed" >>"$PTSV"
        continue
      fi
      echo "  eval:  $ev" | tee -a "$LOG"
      unavailable=$(sed -n 's/.*"paths_unavailable":\[\([^]]*\)\].*/\1/p' <<<"$ev" | tr -d '"' | sed 's/,/, /g')
      p=${ev#*\"paths\":[}
      p=${p%%]*}
      # one row per path: set, seed, ok, path, precision, max |p - p_fp32|, AUC diff, log-loss diff,
      # holds, then the fp32 AUC and log loss
      tr '}' '\n' <<<"$p" | sed -n 's/.*"isa":"\([^"]*\)","precision":"\([^"]*\)".*"max_abs_diff_vs_fp32":\([^,]*\),"auc_diff":\([^,]*\),"logloss_diff":\([^,]*\),"within_bounds":\([a-z]*\).*/\1\t\2\t\3\t\4\t\5\t\6/p' |
        while IFS= read -r row; do
          printf '%s\t%s\tok\t%s\t%s\t%s\n' "$set" "$seed" "$row" "$(json_num "${ev%%,\"paths\"*}" auc)" \
            "$(json_num "${ev%%,\"paths\"*}" logloss)"
        done >>"$PTSV"
    done
  done
  elapsed=$(( $(date +%s) - start ))
  SEC=$WORK/paths.md
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
  rerun="QUALITY_SEEDS=\"$(echo $SEEDS)\""
  if [ -n "${QUALITY_KEEP:-}" ]; then rerun="$rerun QUALITY_KEEP=$KEEP"; fi
  rerun="$rerun bash bench/quality.sh"
  if [ "$QUICK" = 1 ]; then rerun="$rerun --quick"; fi
  rerun="$rerun --paths"
  {
    echo "## Serving paths"
    echo
    echo "Written by \`bash bench/quality.sh --paths\` on $(date -u +%Y-%m-%d) in ${elapsed} s ($trained of $runs"
    echo "models trained by this run, the others kept in \`$KEEP\`), on ${cpu:-this CPU}. The \`full\` model"
    echo "of each set and seed (the hyperparameters above) scores its test split with \`trail eval --paths\`:"
    echo "first on fp32 (OpenBLAS, training's own forward: the reference), then on every other compute"
    echo "path this machine runs (ranker/rank_isa.h), each through one \`rank_engine\` as \`trail serve\`"
    echo "uses it. Not measured here (this CPU lacks them): ${unavailable:-none}."
    echo "A path holds when max |p - p_fp32| <= 5e-3 over the test samples, |AUC diff| <= 0.0005 and"
    echo "|log-loss diff| <= 0.001 (diffs: the path's minus fp32's)."
    echo
    echo "| set | seed | path | precision | max \\|p - p_fp32\\| | AUC diff | log-loss diff | holds |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' '
      $3 != "ok" { printf "| %s | %s | %s | | | | | **unknown** |\n", $1, $2, $3; bad++; next }
      { printf "| %s | %s | %s | %s | %.2e | %+.2e | %+.2e | %s |\n", $1, $2, $4, $5, $6, $7, $8,
          $9 == "true" ? "yes" : "**no**"; n++; if ($9 != "true") bad++ }
      $3 == "ok" {
        if (!($4 in pr)) order[++np] = $4
        pr[$4] = $5
        a = $6 + 0; if (a < 0) a = -a; if (a > mx[$4]) mx[$4] = a
        a = $7 + 0; if (a < 0) a = -a; if (a > ad[$4]) ad[$4] = a
        a = $8 + 0; if (a < 0) a = -a; if (a > ld[$4]) ld[$4] = a
        runs[$4]++; if ($9 == "true") held[$4]++
      }
      END {
        printf "\n%d path rows, %d do not hold%s.\n", n, bad + 0, bad ? "" : ": every path is within bounds"
        printf "Only paths that hold are chosen by default (ranker/rank_isa.c, rank_isa_best); the int8\n"
        printf "paths are opt-in (`--isa`) for users who accept single probabilities moving by more.\n"
        printf "\nWorst over the sets and seeds, per path:\n\n"
        printf "| path | precision | max \\|p - p_fp32\\| | max \\|AUC diff\\| | max \\|log-loss diff\\| | holds |\n"
        printf "|---|---|---|---|---|---|\n"
        for (i = 1; i <= np; i++) {
          q = order[i]
          printf "| %s | %s | %.2e | %.2e | %.2e | %s |\n", q, pr[q], mx[q], ad[q], ld[q],
            held[q] == runs[q] ? "yes (" runs[q] " of " runs[q] ")" : "**no** (" held[q] + 0 " of " runs[q] ")"
        }
      }' "$PTSV"
    echo
    echo "Re-run only the evaluation (the models are kept): \`$rerun\`."
  } >"$SEC"
  if [ -f "$OUT" ] && grep -q '^## Serving paths$' "$OUT"; then
    tmp=$(mktemp "$WORK/quality-md-XXXXXX")
    awk -v sec="$SEC" '
      /^## Serving paths$/ { while ((getline l < sec) > 0) print l; skip = 1; next }
      skip && /^## / { skip = 0; print "" }
      !skip' "$OUT" >"$tmp"
    cat "$tmp" >"$OUT"
    rm -f "$tmp"
  else
    if [ -s "$OUT" ]; then echo >>"$OUT"; fi
    cat "$SEC" >>"$OUT"
  fi
  cat "$SEC"
  echo "quality: wrote the Serving paths section of $OUT (${elapsed} s)"
  exit 0
fi

# ---- runs: seeds outermost, so a budget cut leaves whole seeds
start=$(date +%s)
for seed in $SEEDS; do
  for set in $SETS; do
    for v in $VARIANTS; do
      now=$(date +%s)
      if [ $((now - start)) -ge "$BUDGET" ]; then
        echo "quality: budget of ${BUDGET}s spent; skipping $set $v seed $seed" | tee -a "$LOG"
        printf '%s\t%s\t%s\tskipped\n' "$set" "$v" "$seed" >>"$TSV"
        continue
      fi
      model=$WORK/$set-$v-$seed.model
      pa=$(proto_args "$set")
      echo "quality: $set $v seed $seed" | tee -a "$LOG"
      # shellcheck disable=SC2086
      if ! tr=$("$TRAIL" train --events "$WORK/$set.jsonl" $pa --variant "$v" --seed "$seed" \
                --model-out "$model" $TRAIN_ARGS --json 2>>"$LOG"); then
        printf '%s\t%s\t%s\tfailed\n' "$set" "$v" "$seed" >>"$TSV"
        continue
      fi
      # shellcheck disable=SC2086
      ev=$("$TRAIL" eval --model "$model" --events "$WORK/$set.jsonl" $pa --seed "$seed" --window 256 \
           --split test --by-history --json 2>>"$LOG")
      echo "  train: $tr" >>"$LOG"
      echo "  eval:  $ev" | tee -a "$LOG"
      oracle=$(json_num "$ev" oracle_auc)
      cal=$(sed -n 's/.*"calibration":"\([^"]*\)".*/\1/p' <<<"$tr")
      printf '%s\t%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "$v" "$seed" \
        "$(json_num "$ev" auc)" "$(json_num "$ev" gauc)" "$(json_num "$ev" logloss)" \
        "$(json_num "$tr" seconds)" "${oracle:-nan}" "$(json_num "$ev" samples)" \
        "$(kind_auc "$ev" item_in_window)" "$(kind_auc "$ev" category_in_window)" \
        "$(kind_auc "$ev" neither)" "$(json_num "$ev" calibration)" "${cal:-unknown}" >>"$TSV"
      if [ "$v" = full ]; then keep_model "$model" "$set" "$seed" "$tr"; else rm -f "$model"; fi
    done
  done
done
elapsed=$(( $(date +%s) - start ))

# ---- the table (a "Serving paths" section already in OUT, from --paths, is kept at its end)
old_paths=$(awk '/^## Serving paths$/ { f = 1 } f && /^## / && !/^## Serving paths$/ { f = 0 } f' "$OUT" 2>/dev/null || true)
{
  echo "# Quality"
  echo
  echo "Written by \`bash bench/quality.sh\` on $(date -u +%Y-%m-%d) in ${elapsed} s of runs"
  echo "(budget ${BUDGET} s; 2 shared cores). Test split (last 10% by time); mean +- standard deviation"
  echo "over the seeds that ran (n). Time is wall-clock training time (evaluations included)."
  echo
  echo "Same hyperparameters everywhere: \`$(echo $TRAIN_ARGS)\`."
  echo "Sets: taobao = Taobao head, pinned protocol (\`--protocol taobao\`); taobao-sparse = the same"
  echo "file cut to each user's first 8 behaviors by time, same protocol and split; movielens ="
  echo "MovieLens latest-small, next behavior with one popularity negative; synthetic ="
  echo "\`trail gen $GEN_ARGS\` (docs/SYNTHETIC.md), impressions with their true probability (oracle"
  echo "AUC); resurfacing = \`trail gen $RES_ARGS\`, interests that return in bursts weeks"
  echo "apart and items that rarely repeat, impressions likewise. Only these sets ran: $SETS."
  echo "Every variant's head has q (.) u_short (\`q_short=1\`), and SDIM's signatures hash the item"
  echo "and category halves apart (\`hash=fields\`, S = 16, tau = 4): the defaults; docs/TRAINING.md"
  echo "compares them with the issue's head and the paper's hashing. \`full\` also has the cross"
  echo "statistics (\`cross=1\`: 8 counts and times of the candidate's category and item in the window,"
  echo "docs/TRAINING.md); \`full,cross=0\` is the same model without them, SDIM + selfattn + TIN as the"
  echo "issue defines the full model."
  echo
  awk -F'\t' -v sets="$SETS" -v variants="$VARIANTS" -v seeds="$SEEDS" '
    function mean(s, n) { return n ? s / n : 0 }
    function sd(s, q, n,   m) { if (n < 2) return 0; m = s / n; return sqrt((q - n * m * m) / (n - 1) > 0 ? (q - n * m * m) / (n - 1) : 0) }
    {
      k = $1 SUBSEP $2
      if ($4 != "ok") { miss[k]++; next }
      n[k]++
      a[k] += $5; a2[k] += $5 * $5
      g[k] += $6; g2[k] += $6 * $6
      l[k] += $7; l2[k] += $7 * $7
      t[k] += $8; t2[k] += $8 * $8
      cb[k] += $14; cb2[k] += $14 * $14
      if ($15 != "platt") { unfit[$1]++; unfit_all++ }
      if (cbmin[k] == "" || $14 < cbmin[k]) cbmin[k] = $14
      if (cbmax[k] == "" || $14 > cbmax[k]) cbmax[k] = $14
      if ($9 != "nan" && $9 != "") { o[$1] += $9; on[$1]++ }
      smp[$1] = $10
      for (h = 0; h < 3; h++) if ($(11 + h) != "nan" && $(11 + h) != "") { hs[k, h] += $(11 + h); hn[k, h]++ }
    }
    END {
      ns = split(sets, S, " "); nv = split(variants, V, " ")
      for (i = 1; i <= ns; i++) {
        s = S[i]
        printf "## %s\n\n", s
        if (on[s]) printf "Oracle AUC (true probabilities) on the test split: %.4f. ", o[s] / on[s]
        if (smp[s] != "") printf "Test samples: %s.", smp[s]
        printf "\n\n| variant | n | AUC | GAUC | log loss | calibration | train time (s) |\n|---|---|---|---|---|---|---|\n"
        for (j = 1; j <= nv; j++) {
          k = s SUBSEP V[j]; c = n[k] + 0
          if (!c) { printf "| %s | 0 | not run | | | | |\n", V[j]; continue }
          auc[s, V[j]] = mean(a[k], c)
          printf "| %s | %d%s | %.4f +- %.4f | %.4f +- %.4f | %.4f +- %.4f | %.3f +- %.3f | %.0f +- %.0f |\n", V[j], c,
            miss[k] ? " (" miss[k] " skipped)" : "", mean(a[k], c), sd(a[k], a2[k], c), mean(g[k], c),
            sd(g[k], g2[k], c), mean(l[k], c), sd(l[k], l2[k], c), mean(cb[k], c), sd(cb[k], cb2[k], c),
            mean(t[k], c), sd(t[k], t2[k], c)
        }
        printf "\n"
      }
      printf "## Targets (issue 5)\n\n| target | measured | holds |\n|---|---|---|\n"
      if ((("taobao" SUBSEP "full") in auc))
        printf "| taobao: full test AUC >= 0.86 | %.4f | %s |\n", auc["taobao", "full"], (auc["taobao", "full"] >= 0.86 ? "yes" : "**no**")
      else printf "| taobao: full test AUC >= 0.86 | not run | **unknown** |\n"
      for (i = 1; i <= ns; i++) {
        s = S[i]
        if (s != "taobao" && s != "movielens" && s != "synthetic") continue  # issue 5 named these
        if (((s SUBSEP "sdim") in auc) && ((s SUBSEP "din-long") in auc)) {
          d = auc[s, "sdim"] - auc[s, "din-long"]
          printf "| %s: SDIM within 0.01 AUC of DIN-long | %+.4f | %s |\n", s, d, (d >= -0.01 && d <= 0.01) ? "yes" : "**no**"
        } else printf "| %s: SDIM within 0.01 AUC of DIN-long | not run | **unknown** |\n", s
      }
      s = "synthetic"
      if (((s SUBSEP "din-short") in auc) && ((s SUBSEP "sdim") in auc) && ((s SUBSEP "din-long") in auc) && ((s SUBSEP "full") in auc)) {
        b = auc[s, "din-short"]
        printf "| synthetic: SDIM >= DIN-short + 0.01 | %+.4f | %s |\n", auc[s, "sdim"] - b, (auc[s, "sdim"] - b >= 0.01 ? "yes" : "**no**")
        printf "| synthetic: DIN-long >= DIN-short + 0.01 | %+.4f | %s |\n", auc[s, "din-long"] - b, (auc[s, "din-long"] - b >= 0.01 ? "yes" : "**no**")
        d = auc[s, "sdim"] - auc[s, "din-long"]
        printf "| synthetic: SDIM within 0.005 of DIN-long | %+.4f | %s |\n", d, (d >= -0.005 && d <= 0.005) ? "yes" : "**no**"
        best = 1
        for (j = 1; j <= nv; j++) if (((s SUBSEP V[j]) in auc) && auc[s, V[j]] > auc[s, "full"]) best = 0
        printf "| synthetic: full is the best variant | %.4f | %s |\n", auc[s, "full"], best ? "yes" : "**no**"
        if (on[s]) {
          d = o[s] / on[s] - auc[s, "full"]
          printf "| synthetic: full within 0.02 of the oracle AUC | oracle - full = %.4f | %s |\n", d, (d <= 0.02 ? "yes" : "**no**")
        }
      } else printf "| synthetic targets | not run | **unknown** |\n"
      printf "\n## Targets (issue 16)\n\n| target | measured | holds |\n|---|---|---|\n"
      for (i = 1; i <= ns; i++) {
        s = S[i]
        if (!((s SUBSEP "full") in auc)) { printf "| %s: full | not run | **unknown** |\n", s; continue }
        bo = -1; bv = ""
        for (j = 1; j <= nv; j++)
          if (V[j] != "full" && ((s SUBSEP V[j]) in auc) && auc[s, V[j]] > bo) { bo = auc[s, V[j]]; bv = V[j] }
        if (bo >= 0) {
          d = auc[s, "full"] - bo
          printf "| %s: full AUC >= best other (%s) - 0.003 | %+.4f | %s |\n", s, bv, d, (d >= -0.003 ? "yes" : "**no**")
        }
        k = s SUBSEP "full"
        printf "| %s: full calibration within 0.95-1.05, every seed | %.3f - %.3f | %s |\n", s, cbmin[k], cbmax[k],
          (cbmin[k] >= 0.95 && cbmax[k] <= 1.05) ? "yes" : "**no**"
      }
      printf "| calibration fitted (Platt) in every run | %d runs without it | %s |\n", unfit_all, (unfit_all ? "**no**" : "yes")
      printf "\n## By history (`trail eval --by-history`)\n\n"
      printf "Test AUC of each kind of positive against all negatives, mean over seeds: its item in the\n"
      printf "window of 256 (a repeat), only its category, or neither (docs/TRAINING.md reads them).\n\n"
      printf "| set | variant | item in window | category only | neither |\n|---|---|---|---|---|\n"
      for (i = 1; i <= ns; i++)
        for (j = 1; j <= nv; j++) {
          k = S[i] SUBSEP V[j]
          if (!n[k]) continue
          printf "| %s | %s", S[i], V[j]
          for (h = 0; h < 3; h++) printf(hn[k, h] ? " | %.4f" : " | -", hn[k, h] ? hs[k, h] / hn[k, h] : 0)
          printf " |\n"
        }
    }' "$TSV"
  bounds=$(grep -o 'oracle_auc=.*known_form_fitted=[0-9.]*' "$LOG" | tail -1 || true)
  if [ -n "$bounds" ]; then
    echo
    echo "Synthetic set, what a history-only model can reach (\`trail gen\`, docs/SYNTHETIC.md): the"
    echo "AUC of the true logit on the test impressions, then without the user's propensity (no input"
    echo "of the ranker sees it), then without the item's quality too, then with the quality the"
    echo "training labels show, then also with the session's topic only as far as the session's"
    echo "behaviors so far show it, then also with the user's interests only as far as the past"
    echo "sessions show them (the ceiling for a model trained on this set), then a learner that knows"
    echo "the click model's form and is given those posteriors, fitting its five coefficients and"
    echo "the item biases to the training labels: \`$bounds\`."
    ceil=$(printf '%s\n' "$bounds" | grep -o 'interests_from_history=[0-9.]*' | cut -d= -f2)
    orc=$(printf '%s\n' "$bounds" | grep -o '^oracle_auc=[0-9.]*' | cut -d= -f2)
    if [ -n "$ceil" ] && [ -n "$orc" ]; then
      awk -v c="$ceil" -v o="$orc" 'BEGIN { printf "The oracle target (oracle - 0.02 = %.4f) lies %.4f below that ceiling.\n", o - 0.02, c - (o - 0.02) }'
    fi
  fi
  echo
  echo "Raw rows (set, variant, seed, status, auc, gauc, logloss, seconds, oracle_auc, samples, then"
  echo "the AUC of positives whose item is in the window, whose category only is, and neither, then"
  echo "the test calibration (mean prediction / mean label) and the training's calibration status):"
  echo
  echo '```'
  cat "$TSV"
  echo '```'
  if [ -n "$old_paths" ]; then
    echo
    printf '%s\n' "$old_paths"
  fi
} >"$OUT"
echo "quality: wrote $OUT (${elapsed} s)"
