#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the host tests (the xenstore crate against the
# real Xen xenstored, the testbed, the xen ABI, the boot tool), every kernel test image in QEMU, and a
# bounded fuzz run. Installs what is missing first. The last line is `N passed, N failed`; the exit
# status is 0 only if nothing failed.
#
# Each step's full output is kept in target/test-logs/<step>.log and shown on the terminal.
set -uo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'EOF'
Usage: ./run-tests.sh [--no-install] [--only STEP]...

Steps, in order: daemon fmt cycles clippy-host clippy-kernel doc host examples kernel xen stress fuzz
  --no-install   install and fetch nothing: no apt packages, no toolchain, no xenstored
                 binary, no real-Xen packages (a missing one fails its step and says so)
  --only STEP    run only the named step (repeatable)
Environment: FUZZ_SECONDS (default 30) bounds the fuzz run; STRESS_ROUNDS (default 20) is how
often the stress step runs each of its tests under a CPU hog. XEN_STEP=skip skips the xen
step (the kernel under the real Xen 4.17 in QEMU, on two beds side by side, one with xenstored and one
with oxenstored, 5-10 minutes; it fetches ~75 MB of Debian packages once); the summary then says
SKIPPED.
EOF
}

install=1
only=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) install=0 ;;
        --only) only+=("$2"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

logdir=target/test-logs
mkdir -p "$logdir"
passed=0
failed=0
failed_steps=()
skipped_steps=()

wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local s
    for s in "${only[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

# run_step NAME CMD...: runs CMD, counts its libtest summary lines (`test result: ... N passed; M
# failed`). A step that fails without reporting a failed test (a build error, a crash) counts as one
# failure; a step that reports no tests at all (fmt, clippy) counts as one test.
run_step() {
    local name=$1; shift
    wanted "$name" || return 0
    local log="$logdir/$name.log"
    printf '\n==== %s: %s\n' "$name" "$*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    local p f
    p=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
    if ! grep -q '^test result: ' "$log"; then
        if [ "$status" -eq 0 ]; then p=1; else f=1; fi
    elif [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -gt 0 ] && failed_steps+=("$name")
    printf '==== %s: %d passed, %d failed, exit %d, %ds\n' "$name" "$p" "$f" "$status" $((SECONDS - start))
}

if [ "$install" -eq 1 ]; then
    echo "==== install: packages and toolchain (scripts/install-deps.sh)"
    if ! scripts/install-deps.sh; then
        echo "installing dependencies failed: see the messages above" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

export CARGO_TERM_COLOR=never
if [ "$install" -eq 0 ]; then
    export TESTBED_OFFLINE=1 REALXEN_OFFLINE=1
fi

# The real Xen xenstored the host and kernel tests talk to: fetched once into .cache/, named here so
# the run's output says which daemon binary and version the results are against.
run_step daemon testbed/fetch-xenstored.sh
run_step fmt cargo fmt --all -- --check
# No import cycle between the modules of any crate (issue 12's rule: a file reaching its own folder's
# mod.rs through `super::` is the one edge not counted).
run_step cycles scripts/module-cycles.py
run_step clippy-host cargo clippy --workspace --exclude kernel --exclude ktests --all-targets -- -D warnings
run_step clippy-kernel cargo clippy -p kernel -p ktests --target x86_64-unknown-none --all-targets -- -D warnings
run_step doc scripts/doc.sh
run_step host cargo test --no-fail-fast
run_step examples scripts/examples.sh
run_step kernel cargo run -q -p bootimage -- test
# The kernel as PVH domUs under the real hypervisor (realxen/): Xen and dom0 boot once in QEMU. Only an
# explicit opt-out skips it; a bed that cannot boot fails the step.
if [ "${XEN_STEP:-run}" = skip ]; then
    if wanted xen; then
        printf '\n==== xen: SKIPPED (XEN_STEP=skip)\n'
        skipped_steps+=(xen)
    fi
else
    run_step xen cargo run -q -p realxen -- test
fi
# The once-flaky tests and the fault tests, many times over while busy loops load every core.
run_step stress scripts/stress.sh
run_step fuzz xenstore/fuzz/run.sh "${FUZZ_SECONDS:-30}"

echo
if [ ${#skipped_steps[@]} -gt 0 ]; then
    echo "SKIPPED steps: ${skipped_steps[*]}"
fi
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "failed steps: ${failed_steps[*]} (logs in $logdir/)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
