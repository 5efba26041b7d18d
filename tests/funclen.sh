#!/usr/bin/env bash
# No function in the project's C files is over 150 lines (issue 18's bound: a reader sees a
# function's steps in one screenful or two). A function runs from the first line of its signature
# (at column 0, as clang-format writes it) to its closing brace at column 0. Fails listing those
# over the bound, longest first. Usage: bash tests/funclen.sh [MAX] [FILE...]   (default 150, every
# tracked .c file)
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-150}
shift $(($# > 0 ? 1 : 0))
files=("$@")
[ ${#files[@]} -gt 0 ] || mapfile -t files < <(git ls-files '*.c')
long=$(awk -v max="$max" '
  FNR == 1 { name = "" }
  /^[A-Za-z_][^=]*\(/ && !/;[[:space:]]*$/ && name == "" { name = $0; start = FNR }
  /^}/ { if (name != "" && FNR - start + 1 > max)
           printf "%5d %s:%d: %s\n", FNR - start + 1, FILENAME, start, substr(name, 1, 60)
         name = "" }' "${files[@]}" | sort -rn)
if [ -n "$long" ]; then
  echo "funclen: functions over $max lines:" >&2
  echo "$long" >&2
  exit 1
fi
echo "funclen: ${#files[@]} files, no function over $max lines"
