#!/usr/bin/env bash
# Fuzzes the generator (parse, lower, every emitter) with AFL++ through cargo-afl.
#   codegen/fuzz/run.sh [SECONDS] [OUTPUT_DIR]
# Seeds are the repository's specs and regressions/; a second run with the same
# OUTPUT_DIR continues the first (its queue, its execution count). FUZZ_JOBS=2 runs a
# second instance. A crash is saved under OUTPUT_DIR/*/crashes; replay one with
# `$FUZZ_TARGET_DIR/release/pipeline < FILE` and add it to codegen/fuzz/regressions/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
out="${2:-/var/tmp/codegen-fuzz}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/shop-fuzz-target}"

command -v cargo-afl >/dev/null || cargo install cargo-afl --locked --version 0.18.2
cargo afl build --release --locked --quiet

seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
cp ../../spec/*.yaml ../tests/fixtures/*.yaml regressions/* "$seeds"/

# Fast calibration: resuming a queue of thousands of inputs otherwise takes minutes.
export AFL_FAST_CAL=1 AFL_AUTORESUME=1 AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_AFFINITY="${AFL_NO_AFFINITY:-1}"
afl=(cargo afl fuzz -i "$seeds" -o "$out" -x spec.dict -t 2000 -V "$secs")
bin="$CARGO_TARGET_DIR/release/pipeline"
# FUZZ_JOBS=N adds N-1 secondary instances at the lowest priority (they share the queue).
helpers=()
for ((i = 1; i < ${FUZZ_JOBS:-1}; i++)); do
    nice -n 19 "${afl[@]}" -S "helper$i" "$bin" > "$out.helper$i.log" 2>&1 &
    helpers+=($!)
done
status=0
"${afl[@]}" "$bin" > "$out.log" 2>&1 || status=$?
for pid in "${helpers[@]}"; do wait "$pid" || status=$?; done
for stats in "$out"/*/fuzzer_stats; do
    echo "$stats"
    grep -E "execs_done|execs_per_sec|run_time|corpus_count|bitmap_cvg|saved_crashes|saved_hangs" "$stats"
done
crashes=$(find "$out"/*/crashes -type f -name 'id:*' 2>/dev/null | wc -l)
if [[ $status -ne 0 || $crashes -ne 0 ]]; then
    echo "fuzzing failed (exit $status, $crashes crashes): see $out.log and $out/default/crashes" >&2
    exit 1
fi
