#!/usr/bin/env bash
# Fuzzes every input decoder of connsum (the Fuzz* targets in the modules' fuzz_test.go files)
# for the given time each, then prints the executions per target.
#
#   scripts/fuzz.sh          # 30s per target
#   scripts/fuzz.sh 10m      # longer, e.g. nightly
#
# A failing input stops the script; Go writes it under <package>/testdata/fuzz/<Target>/.
# Commit it once the bug is fixed: it then runs as a seed in every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-30s}"

targets=()
while IFS= read -r file; do
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    targets+=("./$(dirname "$file") $name")
  done
done < <(find modules app -name '*_test.go' -print0 2>/dev/null | xargs -0 grep -l '^func Fuzz' | sort)

if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets found" >&2
  exit 1
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
results=()
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  log="$logdir/$name.log"
  echo "fuzz.sh: $name ($pkg) for $fuzztime" >&2
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
    cat "$log" >&2
    echo "fuzz.sh: $name FAILED (input under $pkg/testdata/fuzz/$name/)" >&2
    exit 1
  fi
  execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
  interesting=$(grep -o 'new interesting: [0-9]* (total: [0-9]*)' "$log" | tail -n1 | sed 's/.*total: \([0-9]*\))/\1/')
  results+=("$(printf '%-28s %-20s %12s %10s' "$name" "$pkg" "${execs:-?}" "${interesting:-?}")")
done

printf '\n%-28s %-20s %12s %10s\n' "target" "package" "execs" "corpus"
printf '%s\n' "${results[@]}"
echo "all ${#targets[@]} targets passed ($fuzztime each)"
