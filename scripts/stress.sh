#!/usr/bin/env bash
# The stress step of ./run-tests.sh: the tests that were once flaky (the watch flood, time) and the
# fault tests, each run STRESS_ROUNDS times (default 20) while busy loops keep every core busy. A
# test that passes only on an idle machine fails here.
#
#   scripts/stress.sh     (STRESS_ROUNDS=N to change the count)
#
# Prints libtest-style `test result:` lines (one per boot or run), which run-tests.sh counts.
set -uo pipefail
cd "$(dirname "$0")/.."

rounds=${STRESS_ROUNDS:-20}
# Kernel images booted `rounds` times each: time, the watch flood, hostile and stopped daemons, the
# shell's long lines and Ctrl-C.
kernel_images=(time xenstore_watch_flood xenstore_hostile xenbus_shell)
# Host tests run `rounds` times each: the arguments of `cargo test -q` (filters after `--`).
host_tests=(
    "-p xenstore-client --lib runtime::watch"
    "-p xenstore-client --test real_runtime -- slow_callback a_cancelled_suspend"
    "-p xenstore-client --test real_faults"
    "-p xenstore-client --test mock_peer"
    "-p xenstore-client --test real_daemon -- transactions_contending"
    "-p xenbus --test service_threads"
    "-p xenbus --test control"
    "-p xenbus --test slow_driver_watch"
    "-p testbed --features xenstore --lib -- xs::"
)

# Build first, on idle cores: the hog is for the tests, not the compiler.
echo "stress: building"
cargo build -q -p bootimage || exit 1
cargo test -q --no-run -p xenstore-client -p xenbus 2>/dev/null || exit 1
cargo test -q --no-run -p testbed --features xenstore 2>/dev/null || exit 1

hogs=()
stop_hogs() {
    [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null
    wait 2>/dev/null
}
trap stop_hogs EXIT
cores=$(nproc)
for _ in $(seq "$cores"); do
    (while :; do :; done) &
    hogs+=($!)
done
echo "stress: $cores busy loops keep every core busy; each test runs $rounds times"

status=0
start=$SECONDS
cargo run -q -p bootimage -- test --repeat "$rounds" "${kernel_images[@]}" || status=1
echo "stress: kernel images done in $((SECONDS - start))s"

start=$SECONDS
for spec in "${host_tests[@]}"; do
    read -r -a args <<<"$spec"
    log=$(mktemp)
    for round in $(seq "$rounds"); do
        if ! cargo test -q "${args[@]}" >"$log" 2>&1; then
            echo "stress: cargo test $spec failed in round $round:"
            cat "$log" # its summary lines included, counted once
            grep -q '^test result' "$log" || echo "stress: round $round printed no result"
            status=1
            continue
        fi
        # Only the summary (the runner counts it).
        grep -E '^test result' "$log" || { echo "stress: round $round printed no result"; status=1; }
    done
    rm -f "$log"
done
echo "stress: host tests done in $((SECONDS - start))s"
exit $status
