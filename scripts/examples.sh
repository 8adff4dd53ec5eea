#!/usr/bin/env bash
# The `examples` step: builds every example of the publishable crates and runs each against the real
# xenstored: xenstore's as dom0 over the socket of a daemon the testbed starts here (the way an
# example's user runs it, with XENSTORED_PATH); xenbus's start their own (a guest on a domain's ring
# needs the testbed's shared page). Prints libtest-style lines; an example passes when it exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."

examples=(read_write watch_subtree transaction_retry)
own_daemon=(toy_frontend)

cargo build -q -p xenstore-client --examples || exit 1
cargo build -q -p xenbus --examples || exit 1
cargo build -q -p testbed || exit 1

dir=$(mktemp -d)
trap 'kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; rm -rf "$dir"' EXIT
target/debug/testbed up --no-trace < /dev/null > "$dir/up.out" 2> "$dir/up.err" &
daemon_pid=$!
for _ in $(seq 600); do
    grep -q '^ready=1' "$dir/up.out" && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q '^ready=1' "$dir/up.out"; then
    echo "the real xenstored did not start (testbed up):" >&2
    cat "$dir/up.out" "$dir/up.err" >&2
    exit 1
fi
socket=$(sed -n 's/^socket=//p' "$dir/up.out")
echo "real xenstored at $socket ($(sed -n 's/^daemon_version=//p' "$dir/up.out"))"

echo
echo "running $(( ${#examples[@]} + ${#own_daemon[@]} )) tests"
passed=0
failed=()
start=$SECONDS
# run_example NAME [VAR=VALUE...]: runs one example with the given environment, prints its test line.
run_example() {
    local example=$1; shift
    if env "$@" timeout 120 "target/debug/examples/$example" > "$dir/$example.out" 2>&1; then
        echo "test examples::$example ... ok"
        passed=$((passed + 1))
    else
        echo "test examples::$example ... FAILED"
        failed+=("$example")
    fi
}
for example in "${examples[@]}"; do
    run_example "$example" "XENSTORED_PATH=$socket"
done
for example in "${own_daemon[@]}"; do
    run_example "$example"
done
for example in "${failed[@]}"; do
    printf '\n---- examples::%s output ----\n' "$example"
    cat "$dir/$example.out"
done
status=ok
[ ${#failed[@]} -eq 0 ] || status=FAILED
echo
echo "test result: $status. $passed passed; ${#failed[@]} failed; 0 ignored; 0 measured; 0 filtered out; finished in $((SECONDS - start))s"
[ ${#failed[@]} -eq 0 ]
