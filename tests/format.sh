#!/usr/bin/env bash
# Every tracked C file must be as clang-format (the .clang-format at the root, clang-format 14 as
# Debian 12 ships it) writes it. Fails listing the files that are not; fix with
#   git ls-files '*.c' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
  clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: ${#bad[@]} file(s) differ from clang-format's output:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "format: run: git ls-files '*.c' '*.h' | xargs clang-format -i" >&2
  exit 1
fi
echo "format: $(git ls-files '*.c' '*.h' | wc -l) files as clang-format writes them"
