#!/usr/bin/env bash
# The benchmark: our xenstore client against libxenstore (the system's C client) and against
# the daemon's own limit, all on ONE real Xen xenstored (Debian's 4.17, run by the testbed with fake Xen
# libraries; trace off), all as dom0 over its unix socket. Installs and builds what it needs first.
#
# What each printed number measures (operations per second; node /bench/read or /bench/write, 32-byte
# value, for every client; every reply checked):
#   ours_read_1t               our Client, 1 thread calling read() in a loop (1 request in flight)
#   libxs_read_1t              libxenstore, 1 thread calling xs_read() in a loop
#   ours_write_1t              our Client, 1 thread calling write() in a loop
#   libxs_write_1t             libxenstore, 1 thread calling xs_write() in a loop
#   ours_read_4t               our Client shared by 4 threads, each calling read() one at a time
#                              (synchronous: at most 4 requests in flight)
#   libxs_read_4t_one_handle   libxenstore, 4 threads sharing one handle (its mutex: 1 in flight)
#   libxs_read_4t_4handles     libxenstore, 4 threads with a connection each
#   daemon_read_pipelined      a raw client with 64 READs in flight on one connection: the daemon's own
#                              ceiling (no library, nothing waits but the daemon)
#   ours_read_many_1t          our Client, 1 thread, read_many() of 64 paths per call (the library's
#                              own pipelining, Config::pipeline_depth in flight)
#   ours_read_many_long_1t     the same with 1024 paths per call: the pipeline fills and drains (the
#                              daemon sleeps and is woken) once per call, so this shows the
#                              pipelining with that cost made small
#   ratio_read_1t, ratio_write_1t   ours / libxenstore, 1 thread
#   ratio_read_4t              ours_read_4t / libxs_read_4t_one_handle
#   ratio_read_4t_vs_4handles  ours_read_4t / libxs_read_4t_4handles
#   ratio_read_4t_vs_pipelined ours_read_4t / daemon_read_pipelined
#   ratio_read_many_vs_pipelined  ours_read_many_1t / daemon_read_pipelined
#   ratio_read_many_long_vs_pipelined  ours_read_many_long_1t / daemon_read_pipelined
#   target_*                   met or NOT MET, for each target below (after the ratios)
#   pinned_*                   the main figures again with the daemon on CPU 0 and every client on
#                              CPU 1 (the layout of a guest, whose daemon runs in another domain)
# Targets (the project's performance goals; asserted nowhere, this only reports): ratio_read_1t >= 1.0,
# ratio_read_4t >= 1.5, ratio_read_4t_vs_4handles >= 1.5 (one connection beats four: issue 11),
# ratio_read_many_vs_pipelined >= 0.95, ratio_read_4t_vs_pipelined >= 0.8.
# Why the last three are not met on this daemon (profile and figures: docs/bench/host-profile.md): a
# socket connection of xenstored 4.17 gets one request read and one piece of a reply (header, then
# body) written per poll round, so one connection costs it two rounds per request where four
# connections share their rounds; and unpinned, the client's threads share the two CPUs with the
# daemon (pinned_ours_read_4t is far higher).
#
# Method: release builds; a warm-up before each sample; 5 rounds (at least), each taking one sample of every
# figure in the order above (ours and libxenstore alternate); each line is `name=median` followed by
# `# median of N: min, max, spread` (bench-stats/), flagged NOISY when the spread passes 20%; a ratio is
# the median of the per-round ratios. Every sample follows as a `#` line. Other load on the machine
# distorts the numbers: load averages are printed before and after.
#
# Three sections, each printing key=value lines: the host section (the xenstore crate; its driver is
# bench/, the C peer bench/libxs_bench.c), the guest section (the kernel's client in QEMU, owned by
# kernel/ and bootimage/: tests/xenstore_bench.rs), the scaling section (tests/scaling_bench.rs: how
# time per operation and the kernel heap's high-water mark grow with 10 to 10,000 watches, directories of
# 10 to 10,000 children and 1 to 200 xenbus devices, xenstored's quotas raised for it; it also draws
# target/bench/scaling.svg) and the real-Xen section (one boot of the real-Xen bed: the kernel against a
# Linux guest on the same xenstore workloads, then the file copy service against the raw vchan it runs
# on; realxen/, tests/xen_xsbench.rs, tests/xen_bench.rs).
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'EOF'
Usage: ./run-bench.sh [--no-install] [--quick]
                      [--host-only | --guest-only | --scaling | --real-xen-only] [--no-real-xen]
                      [GUEST_ARGS...]

  --no-install   do not install missing packages or fetch the xenstored binary
  --quick        a smoke run: host section with 5 rounds of 300 ms samples instead of 1 s, and
                 no scaling or real-Xen section (unless asked for with --scaling or --real-xen-only)
  --host-only    only the host section (our client vs libxenstore vs the daemon's limit)
  --guest-only   only the guest section (the kernel's client in QEMU)
  --scaling      only the scaling section (about 10 minutes under TCG)
  --real-xen-only  only the real-Xen section (the kernel vs a Linux guest, file copy vs raw vchan;
                 about 10 minutes)
  --no-real-xen  skip the real-Xen section
  GUEST_ARGS     passed to the guest and scaling sections (`bootimage bench`, e.g. --accel kvm)
Environment: XSBENCH_ARGS, extra arguments for the host driver (bench/src/main.rs): --rounds N,
  --measure-ms MS, --warmup-ms MS, --only FIGURE, --no-pinned, --socket PATH (an external daemon).
EOF
}

install=1
host=1
guest=1
scaling=1
realxen=1
host_args=()
guest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) install=0 ;;
        --quick) host_args+=(--rounds 5 --measure-ms 300 --warmup-ms 100); quick=1 ;;
        --host-only) guest=0; scaling=0; realxen=0 ;;
        --guest-only) host=0; scaling=0; realxen=0 ;;
        --scaling) host=0; guest=0; realxen=0; only_scaling=1 ;;
        --real-xen-only) host=0; guest=0; scaling=0; only_realxen=1 ;;
        --no-real-xen) realxen=0 ;;
        -h|--help) usage; exit 0 ;;
        *) guest_args+=("$1") ;;
    esac
    shift
done
# --quick is a smoke run: the slow sections only when asked for by name.
if [ "${quick:-0}" -eq 1 ]; then
    [ "${only_scaling:-0}" -eq 1 ] || scaling=0
    [ "${only_realxen:-0}" -eq 1 ] || realxen=0
fi
# shellcheck disable=SC2206 # word splitting is the point: a list of driver flags
host_args+=(${XSBENCH_ARGS:-})

say() { printf '[bench] %s\n' "$*" >&2; }

if [ "$install" -eq 1 ]; then
    say "installing what is missing (scripts/install-deps.sh: libxenstore, xenstore.h, gcc, QEMU, ...)"
    scripts/install-deps.sh
    say "fetching the real xenstored if it is not cached (testbed/fetch-xenstored.sh)"
    testbed/fetch-xenstored.sh >&2
    if [ "$realxen" -eq 1 ]; then
        say "installing what the real-Xen bed needs (scripts/install-deps.sh --real-xen)"
        scripts/install-deps.sh --real-xen
    fi
fi

# ---- host section (xenstore/, bench/): our client vs libxenstore vs the daemon's own limit.
if [ "$host" -eq 1 ]; then
    target="${CARGO_TARGET_DIR:-$PWD/target}"
    mkdir -p "$target/bench"
    say "building the libxenstore peer: gcc -O2 bench/libxs_bench.c -lxenstore"
    gcc -O2 -Wall -Wextra -o "$target/bench/libxs_bench" bench/libxs_bench.c -lxenstore -lpthread
    say "building our client's bench driver: cargo build --release -p xsbench"
    cargo build --release -q -p xsbench
    echo "# host: our client vs libxenstore vs the daemon's limit (one xenstored, its unix socket)"
    say "measuring (about 2 minutes; --quick for a smoke run)"
    "$target/release/xsbench" --libxs "$target/bench/libxs_bench" "${host_args[@]}"
fi

# ---- guest section (kernel/, bootimage/): the kernel's xenstore client over
# the ring to the real xenstored, in QEMU (see tests/xenstore_bench.rs for
# what each figure measures). Prints guest_read_1t=, guest_read_4t= (reads/s
# inside the guest), guest_watch_latency_p50_us=, _p99_us= (host write to
# guest callback, half the round trip timed on the host's clock), the round
# trip itself, and accel= (tcg or kvm) and build=.
if [ "$guest" -eq 1 ]; then
    echo "# guest: kernel xenstore client over the ring (bootimage bench)"
    cargo run -q -p bootimage -- bench --image xenstore_bench "${guest_args[@]}"
fi

# ---- scaling section (tests/scaling_bench.rs): per size, time per operation (median of 5 with its
# spread) and the heap high-water mark (exact); the round trip with dom0 holding the watches is the
# control that tells the daemon's growth from ours. Draws target/bench/scaling.svg.
if [ "$scaling" -eq 1 ]; then
    echo "# scaling: costs against size, fast bed (bootimage bench --image scaling_bench)"
    cargo run -q -p bootimage -- bench --image scaling_bench "${guest_args[@]}"
fi

# ---- real-Xen section (realxen/): one boot of the real-Xen bed (Xen 4.17 and a Linux dom0 in QEMU
# under TCG: absolute numbers are the emulator's; compare within a run).
# 1. The kernel (tests/xen_xsbench.rs) against a Linux PVH domU (dom0's Debian kernel, the static C
#    program realxen/dom0/xsbench_guest.c on /dev/xen/xenbus, a file per thread), both with one vCPU
#    and 128 MiB, given the same workloads by dom0's driver (realxen/dom0/xsbench_driver.c), which
#    times them on dom0's clock and reads each domain's CPU time from the hypervisor (xc_domain_getinfo,
#    the figure behind `xl list`'s Time). 5 rounds of 3 s samples; the guests alternate going first.
#      xen_ours_W_per_s, xen_linux_W_per_s     operations per second, W = read_1t (reads of a 32-byte
#                                              node, one in flight), write_1t, read_4t (4 threads; ours
#                                              share one client, Linux's have a file each), txn (a
#                                              transaction writing one node, committed)
#      xen_ours_W_cpu_us, xen_linux_W_cpu_us   the guest's CPU time per operation
#      ratio_xen_W, ratio_xen_W_cpu            ours / Linux's, per round (targets: throughput >= 1.0,
#                                              CPU per operation <= 1.0, for read_1t, write_1t, txn)
#      xen_G_watch_p50_us, _p99_us, _cpu_us    watch round trip: dom0 writes ping, the guest's watch
#                                              callback reads it and writes pong, dom0's watch sees it
#      ratio_xen_watch_p50, _p99, _cpu         ours / Linux's (target: p99 <= 1.0)
#      target_xen_*=met|NOT MET                each target's verdict
# 2. The file copy service against the raw vchan (tests/xen_bench.rs): 5 rounds of a fresh 16 MiB file,
#    vchan_mib_per_s= (dom0's vchan-socket-proxy into a vchan of the kernel's, timed in the guest),
#    fcopy_mib_per_s= (xen-fcopy into the file copy service, timed by xen-fcopy from start to
#    complete), fcopy_over_vchan= (per round; the target is 0.8 or more), then daemon=.
if [ "$realxen" -eq 1 ]; then
    echo "# real-Xen: the kernel vs a Linux guest, file copy vs raw vchan (realxen bench)"
    offline=()
    [ "$install" -eq 1 ] || offline=(env REALXEN_OFFLINE=1)
    "${offline[@]}" cargo run -q --release -p realxen -- bench --daemon xenstored
fi
