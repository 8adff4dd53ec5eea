#!/usr/bin/env bash
# Builds the xenstore fuzz target(s) with plain cargo on the pinned STABLE
# toolchain and runs each for a bounded time with libFuzzer.
#
#   xenstore/fuzz/run.sh [SECONDS]      (default 30; per target)
#
# cargo-fuzz needs nightly only for -Zsanitizer=address; the coverage
# instrumentation libFuzzer feeds on (SanitizerCoverage) is reachable on
# stable through -Cpasses and -Cllvm-args, which is what cargo-fuzz passes
# too. Without ASan, a bug shows as a panic (safe Rust), which aborts and
# which libFuzzer reports as a crash. Debug assertions and overflow checks
# are on. libfuzzer-sys builds libFuzzer from its C++ sources (g++), once.
#
# Prints, per target, `test fuzz_<target> ... ok|FAILED` and a libtest
# summary line. A crash leaves its input in artifacts/<target>/ and the
# libFuzzer output in target/fuzz-<target>.log.
set -uo pipefail
cd "$(dirname "$0")"

seconds=${1:-30}
targets=(core_parser)
host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$PWD/target"
# What cargo-fuzz passes (minus the nightly-only sanitizer flag).
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

summary() { # passed failed seconds
    local word=ok
    [ "$2" -gt 0 ] && word=FAILED
    echo "test result: $word. $1 passed; $2 failed; 0 ignored; 0 measured; 0 filtered out; finished in $3s"
}

# --target keeps RUSTFLAGS off build scripts (libfuzzer-sys's must not be instrumented).
if ! cargo build --quiet --release --target "$host" --bins; then
    for t in "${targets[@]}"; do echo "test fuzz_$t ... FAILED (build)"; done
    summary 0 "${#targets[@]}" 0
    exit 1
fi

seed_corpus() { # dir: a few well-formed messages to start from
    local dir=$1
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return
    # byte 0: piece seed; then header (type, req_id, tx_id, len; little-endian) + payload.
    printf '\x07\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00value' >"$dir/read-reply"
    printf '\x03\x0f\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00/a\x00A\x00' >"$dir/watch-event"
    printf '\x05\x10\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00ENOENT\x00' >"$dir/error-reply"
    printf '\x09\x06\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x0042\x00' >"$dir/transaction"
    printf '\x0b\x16\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x007\x00ab\x00c\x00\x00' >"$dir/directory-part"
}

passed=0
failed=0
start=$SECONDS
for t in "${targets[@]}"; do
    corpus="corpus/$t"
    artifacts="artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    seed_corpus "$corpus"
    log="$CARGO_TARGET_DIR/fuzz-$t.log"
    if "$CARGO_TARGET_DIR/$host/release/$t" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "test fuzz_$t ... ok (${runs:-?} inputs in ${seconds}s)"
        passed=$((passed + 1))
    else
        tail -n 30 "$log"
        echo "crash input(s): $(ls "$artifacts")"
        echo "test fuzz_$t ... FAILED"
        failed=$((failed + 1))
    fi
done
summary "$passed" "$failed" $((SECONDS - start))
[ "$failed" -eq 0 ]
