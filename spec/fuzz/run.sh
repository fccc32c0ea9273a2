#!/bin/sh
# Fuzz memmap3's file reader: build the libFuzzer harness (spec/fuzz/fuzz_open.c)
# with clang (ASan + UBSan), make the seed corpus (spec/fuzz/make_corpus.lua),
# and fuzz.
#
#   spec/fuzz/run.sh short        CI: about 60 s in all, builds included
#   spec/fuzz/run.sh long         at least RUNS executions (default 10 million)
#                                 in JOBS fuzzers (default: every core) sharing
#                                 the corpus; FORK=1 uses libFuzzer's fork mode
#                                 instead, which goes on past crashes, hangs and
#                                 OOMs but runs slower
#   spec/fuzz/run.sh build        only build build/fuzz/fuzz_open
#   spec/fuzz/run.sh repro FILE.. run inputs once with the last build, printing
#                                 why each was refused (libFuzzer flags may follow)
#
# Environment: CC (clang), SHORT_SECONDS (60: short's whole budget), RUNS,
# JOBS, MAX_LEN (262144), TIMEOUT (10 s per input), EXTRA (more libFuzzer flags),
# SAN_EXTRA (more compiler flags for the harness, e.g. -fno-sanitize=alignment
# to look past a known misaligned-load report).
# Everything goes to build/fuzz/: fuzz_open, seeds/ (made afresh each run),
# corpus/ (grows across runs), artifacts/ (crash-*, timeout-*, oom-*, leak-*),
# logs. Prints the executions done and the crashes found; exits 1 when this
# run found any (crashes, sanitizer reports, hangs or OOMs), 2 on a setup error.
# An input counts as an OOM when the process passes 2 GiB, or when one
# allocation passes 256 MiB (inputs are at most MAX_LEN bytes: that is a size
# taken from the file without a bound). MM3_FUZZ_MEM_MB=N caps the Lua
# state instead (see fuzz_open.c), to look past a known OOM.
set -eu

MODE=${1:-short}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CC=${CC:-clang}
OUT=build/fuzz
LUA_INC=${LUA_INC:-/usr/include/lua5.4}
LPEG_CPATH=${LPEG_CPATH:-/usr/lib/x86_64-linux-gnu/lua/5.4/?.so}
MAX_LEN=${MAX_LEN:-262144}
TIMEOUT=${TIMEOUT:-10}
EXTRA=${EXTRA:-}
SAN_EXTRA=${SAN_EXTRA:-}
START=$(date +%s)

die() { echo "run.sh: $*" >&2; exit 2; }
command -v "$CC" >/dev/null || die "$CC not found (apt-get install clang libclang-rt-14-dev)"
command -v lua5.4 >/dev/null || die "lua5.4 not found (apt-get install lua5.4 liblua5.4-dev lua-lpeg)"
[ -f "$LUA_INC/lua.h" ] || die "no $LUA_INC/lua.h (apt-get install liblua5.4-dev)"

mkdir -p "$OUT/lua/memmap3" "$OUT/corpus" "$OUT/artifacts"

build() {
  # The harness, with the C core and the Lua binding compiled in.
  # shellcheck disable=SC2086 # SAN_EXTRA: zero or more flags
  $CC -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $SAN_EXTRA \
    -D_GNU_SOURCE -DMM3_REPO="\"$ROOT\"" -DMM3_LPEG_CPATH="\"$LPEG_CPATH\"" -Isrc -I"$LUA_INC" \
    spec/fuzz/fuzz_open.c src/mm3_*.c src/lmm3*.c -llua5.4 -lpthread -o "$OUT/fuzz_open.new" &
  p1=$!
  # A plain memmap3.core for make_corpus.lua (run by the lua5.4 binary).
  $CC -O1 -g -shared -fPIC -D_GNU_SOURCE -Isrc -I"$LUA_INC" src/mm3_*.c src/lmm3*.c -lpthread \
    -o "$OUT/lua/memmap3/core.so" &
  p2=$!
  ok=0
  wait $p1 || ok=1
  wait $p2 || ok=1
  [ $ok = 0 ] || die "build failed"
  mv "$OUT/fuzz_open.new" "$OUT/fuzz_open"
}

corpus() {
  rm -rf "$OUT/seeds"
  mkdir -p "$OUT/seeds"
  LUA_INIT='' LUA_INIT_5_4='' LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$(dirname "$LPEG_CPATH")/?.lua;;" \
    LUA_CPATH="$ROOT/$OUT/lua/?.so;$LPEG_CPATH;;" lua5.4 spec/fuzz/make_corpus.lua "$OUT/seeds" ||
    die "make_corpus.lua failed"
  # Tokens of the format: the magic, schema syntax, type names, block tags.
  cat > "$OUT/memmap3.dict" <<'EOF'
magic="MEMMAP3\x00"
root="root "
struct="struct "
enum="enum "
nl="\x0a"
vec="vec<"
ring="ring<"
map="map<"
seg="segmented<"
sarr="string_array<"
valn="value<"
val="value"
str="string<"
bytes="bytes<"
atomic="atomic<"
t_u8="u8"
t_u16="u16"
t_u32="u32"
t_u64="u64"
t_i8="i8"
t_i16="i16"
t_i32="i32"
t_i64="i64"
t_f32="f32"
t_f64="f64"
t_bool="bool"
t_char="char"
t_u128="u128"
t_i128="i128"
t_usize="usize"
t_isize="isize"
dims="[2][3]"
tag_used="\x00ollA3mm"
tag_free="\x00eerF3mm"
bom="\x04\x03\x02\x01"
u64_max="\xff\xff\xff\xff\xff\xff\xff\xff"
u64_top="\x00\x00\x00\x00\x00\x00\x00\x80"
u64_page="\x00\x10\x00\x00\x00\x00\x00\x00"
u64_1k="\x00\x04\x00\x00\x00\x00\x00\x00"
u32_max="\xff\xff\xff\xff"
EOF
}

# Artifacts present now (to count what this run adds).
snapshot() { find "$OUT/artifacts" -type f -printf '%f\n' | sort > "$OUT/artifacts.before"; }
new_artifacts() { find "$OUT/artifacts" -type f -printf '%f\n' | sort | comm -13 "$OUT/artifacts.before" -; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# -detect_leaks=0: libFuzzer's per-input leak check reruns every input whose
# mallocs outnumber its frees under LeakSanitizer; the harness leaves Lua's
# garbage to the incremental collector (see fuzz_open.c), so that would be
# nearly every input. LeakSanitizer still checks the whole process at exit.
FLAGS="-max_len=$MAX_LEN -timeout=$TIMEOUT -rss_limit_mb=2048 -malloc_limit_mb=256 -dict=$OUT/memmap3.dict \
  -detect_leaks=0 -artifact_prefix=$OUT/artifacts/ -print_final_stats=1 $EXTRA"

report() { # $1: executions, $2: seconds, $3: libFuzzer's exit status
  found=$(new_artifacts)
  n=$(printf '%s' "$found" | grep -c . || true)
  rate=$(( $1 / ($2 > 0 ? $2 : 1) ))
  echo "== fuzz $MODE: $1 executions in $2 s ($rate exec/s), $n crash(es) found"
  if [ -n "$found" ]; then
    printf '%s\n' "$found" | sed "s|^|   $OUT/artifacts/|"
    echo "   replay one: spec/fuzz/run.sh repro $OUT/artifacts/<file>"
    exit 1
  fi
  [ "$3" = 0 ] || { echo "run.sh: libFuzzer exited with status $3 (see $OUT/$MODE.log)"; exit 1; }
  exit 0
}

case "$MODE" in
  build)
    build
    ;;
  repro)
    shift
    [ $# -gt 0 ] || die "repro needs input files"
    [ -x "$OUT/fuzz_open" ] || build
    MM3_FUZZ_VERBOSE=1 "$OUT/fuzz_open" -timeout="$TIMEOUT" -rss_limit_mb=2048 -malloc_limit_mb=256 "$@"
    ;;
  short)
    budget=${SHORT_SECONDS:-60}
    build
    corpus
    snapshot
    left=$(( budget - ($(date +%s) - START) - 3 ))
    [ $left -ge 10 ] || left=10
    t0=$(date +%s)
    status=0
    # shellcheck disable=SC2086
    "$OUT/fuzz_open" $FLAGS -max_total_time=$left "$OUT/corpus" "$OUT/seeds" > "$OUT/short.log" 2>&1 || status=$?
    t=$(( $(date +%s) - t0 ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/short.log" | tail -1)
    [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$OUT/short.log" | tail -1)
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$OUT/short.log" | head -20 || true
    report "${runs:-0}" "$t" "$status"
    ;;
  long)
    runs=${RUNS:-10000000}
    jobs=${JOBS:-$(nproc)}
    build
    corpus
    snapshot
    t0=$(date +%s)
    status=0
    if [ "${FORK:-0}" = 1 ]; then
      # Fork mode: JOBS children, each fuzzing for a while and merging what
      # it found; a crash, hang or OOM is saved and fuzzing goes on. Slower:
      # every child reloads its share of the corpus.
      # shellcheck disable=SC2086
      "$OUT/fuzz_open" $FLAGS -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -runs="$runs" -use_value_profile=1 "$OUT/corpus" "$OUT/seeds" > "$OUT/long.log" 2>&1 || status=$?
      done_runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$OUT/long.log" | tail -1)
      tail -3 "$OUT/long.log"
    else
      # JOBS independent fuzzers sharing the corpus, RUNS/JOBS executions
      # each (a worker stops at its first crash, which is saved and reported).
      per=$(( (runs + jobs - 1) / jobs ))
      rm -f "$OUT"/long-*.log
      i=0
      while [ $i -lt "$jobs" ]; do
        # shellcheck disable=SC2086
        "$OUT/fuzz_open" $FLAGS -runs="$per" -use_value_profile=1 "$OUT/corpus" "$OUT/seeds" \
          > "$OUT/long-$i.log" 2>&1 &
        eval "pid_$i=\$!"
        i=$((i + 1))
      done
      i=0
      while [ $i -lt "$jobs" ]; do
        eval "p=\$pid_$i"
        wait "$p" || status=$?
        i=$((i + 1))
      done
      done_runs=0
      for log in "$OUT"/long-*.log; do
        r=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        [ -n "$r" ] || r=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
        done_runs=$((done_runs + ${r:-0}))
        tail -1 "$log"
      done
    fi
    report "${done_runs:-0}" "$(( $(date +%s) - t0 ))" "$status"
    ;;
  *)
    die "unknown mode '$MODE' (short, long, build, repro FILE...)"
    ;;
esac
