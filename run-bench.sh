#!/usr/bin/env bash
# Benchmarks. Prints key=value lines.
#
# The host section (the xenstore crate against libxenstore over the daemon's
# socket) goes above this line; it is the xenstore/bench owner's.
set -euo pipefail
cd "$(dirname "$0")"

# ---- guest section (kernel/, bootimage/): the kernel's xenstore client over
# the ring to the real xenstored, in QEMU (see tests/xenstore_bench.rs for
# what each figure measures). Prints guest_read_1t=, guest_read_4t= (reads/s
# inside the guest), guest_watch_latency_p50_us=, _p99_us= (host write to
# guest callback, half the round trip timed on the host's clock), the round
# trip itself, and accel= (tcg or kvm) and build=.
echo "# guest: kernel xenstore client over the ring (bootimage bench)"
cargo run -q -p bootimage -- bench "$@"
