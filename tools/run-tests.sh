#!/bin/sh
# Run the C unit tests given as arguments, then the busted specs, and end with
# one line "N passed, N failed" counting both. Exit 1 if anything failed.
set -u
LUA=${LUA:-lua5.4}
BUSTED=${BUSTED:-busted}
B=${B:-build}
passed=0
failed=0
skipped=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# MM3_VALGRIND=1: every C test and the busted process itself run under
# valgrind (memcheck); any error it reports fails the run.
VG=""
if [ -n "${MM3_VALGRIND:-}" ]; then VG="valgrind -q --error-exitcode=99 --leak-check=no"; fi
for t in "$@"; do
  echo "== $t"
  $VG "$t" >"$out" 2>&1
  rc=$?
  cat "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  skip=$(grep -E '^[0-9]+ skipped$' "$out" | tail -n 1 | cut -d' ' -f1)
  skipped=$((skipped + ${skip:-0}))
  if [ -n "$line" ]; then
    passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
    failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
  fi
  if [ $rc -ne 0 ] && [ -z "$line" ] || { [ $rc -ne 0 ] && [ "$(echo "$line" | cut -d' ' -f3)" = 0 ]; }; then
    echo "$t: exited with status $rc"
    failed=$((failed + 1))
  fi
done
echo "== busted"
export MM3_BUILD="$B"
if [ -n "${MM3_PRELOAD:-}" ]; then export LD_PRELOAD="$MM3_PRELOAD"; fi
if [ -n "$VG" ]; then
  $VG "$LUA" "$(command -v "$BUSTED")" --ignore-lua --cpath="$B/?.so" ${BUSTED_ARGS:-} >"$out" 2>&1
else
  $BUSTED --lua="$LUA" --cpath="$B/?.so" ${BUSTED_ARGS:-} >"$out" 2>&1
fi
rc=$?
unset LD_PRELOAD
cat "$out"
sum=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$out" | tail -n 1)
if [ -n "$sum" ]; then
  s=$(echo "$sum" | sed -E 's/^([0-9]+) success.*/\1/')
  f=$(echo "$sum" | sed -E 's/^[0-9]+ successes? \/ ([0-9]+) failures?.*/\1/')
  e=$(echo "$sum" | sed -E 's/.* \/ ([0-9]+) errors?.*/\1/')
  passed=$((passed + s))
  failed=$((failed + f + e))
  p=$(echo "$sum" | sed -nE 's/.* \/ ([0-9]+) pending.*/\1/p')
  skipped=$((skipped + ${p:-0}))
elif [ $rc -ne 0 ]; then
  echo "busted exited with status $rc and no summary"
  failed=$((failed + 1))
fi
if [ $rc -ne 0 ] && [ -n "$sum" ] && [ "$f" = 0 ] && [ "$e" = 0 ]; then
  echo "busted exited with status $rc"
  failed=$((failed + 1))
fi
# what could not run on this machine (each says why above): not counted as passed
if [ "$skipped" -gt 0 ]; then echo "$skipped skipped"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
