#!/usr/bin/env bash
# Builds the fuzz targets (build.sh) and runs each with libFuzzer for FUZZ_SECONDS seconds
# (25 by default; make fuzz passes 15 for its eleven targets). Fails on any crash, trap, invariant
# violation, timeout or runaway allocation, and prints the input that caused it.
#
#   Tests/Fuzz/run.sh [TARGET...]                 targets: frame http nats tag regex options startlogging encoder logentries httpresponse nkeys (default: all)
#   FUZZ_SECONDS=600 Tests/Fuzz/run.sh nats       a longer run of one target
#   build/fuzz/fuzz-nats CRASHFILE                replays one input
#
# The committed seeds (Tests/Fuzz/corpus/<target>/, regressions included) are read, never
# written: what a run discovers goes to build/fuzz/corpus/<target>/ and is reused next time.
set -uo pipefail
cd "$(dirname "$0")/../.."

OUT="${FUZZ_OUT:-build/fuzz}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-25}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame http nats tag regex options startlogging encoder logentries httpresponse nkeys)

Tests/Fuzz/build.sh "$OUT" "${targets[@]}" || { echo "fuzz: build failed" >&2; exit 2; }

# symbolize=0: with symbolization a crashing process can keep its output pipe open and hang
# (dev-environment.md). Leak detection is off: Swift's runtime caches look like leaks.
export ASAN_OPTIONS="symbolize=0:detect_leaks=0:${ASAN_OPTIONS_EXTRA:-}"

failed=()
for t in "${targets[@]}"; do
    work="$OUT/corpus/$t"
    mkdir -p "$work" "$OUT/artifacts"
    log="$OUT/$t.log"
    echo "fuzz: $t for ${SECONDS_PER_TARGET}s (log $log)"
    # -timeout: one input taking 10 s is a hang, reported like a crash.
    # -malloc_limit_mb/-rss_limit_mb: an input that makes the code allocate without bound fails.
    timeout -k 10 $((SECONDS_PER_TARGET + 120)) "$OUT/fuzz-$t" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -dict="Tests/Fuzz/dict/$t.dict" -artifact_prefix="$OUT/artifacts/$t-" -print_final_stats=1 \
        "$work" "Tests/Fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+//')
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t ok: ${execs:-?} runs; ${done_line:-no stats}"
    else
        failed+=("$t")
        echo "fuzz: $t FAILED (exit $rc)" >&2
        grep -E 'Fatal error|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY|deadly signal|invariant' "$log" | head -5 >&2
        input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        if [ -n "$input" ]; then
            echo "fuzz: crashing input: $input" >&2
            echo "fuzz: replay with: ASAN_OPTIONS=$ASAN_OPTIONS $OUT/fuzz-$t $input" >&2
        else
            echo "fuzz: no input saved (killed by timeout?), see $log" >&2
        fi
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all targets clean"
