#!/usr/bin/env bash
# The `doc` step: every crate's documentation builds without a warning (broken intra-doc links
# included), the kernel's with its private items (its docs are for maintainers); the publishable
# crates (xen-guest, xenstore-client, xenbus) pass `cargo package`, which builds each from its
# packaged files; and no tracked file holds a merge's conflict markers (a doc once shipped with them).
set -euo pipefail
cd "$(dirname "$0")/.."

if markers=$(git grep -n -E '^(<<<<<<<|>>>>>>>)( |$)|^=======$' -- . ':!*.patch'); then
    echo "merge conflict markers left in:" >&2
    echo "$markers" >&2
    exit 1
fi
export RUSTDOCFLAGS="-D warnings"
cargo doc --workspace --exclude kernel --exclude ktests --no-deps
cargo doc -p kernel -p ktests --target x86_64-unknown-none --no-deps --document-private-items
# The publishable crates package cleanly and build from their packages alone.
# Cargo verifies each package against its siblings through a temporary local
# registry, and unpacks those into $CARGO_HOME/registry/src/-<hash>/, keyed by
# the registry's path and the version only: a second run after an edit would
# build against the first run's sources (same 0.1.0). Remove those unpacked
# copies of our own crates first; crates.io's sources are left alone.
for unpacked in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/{xen-guest,xenstore-client,xenbus}-*/; do
    [ -d "$unpacked" ] && rm -rf "$unpacked"
done
cargo package -q -p xen-guest -p xenstore-client -p xenbus --allow-dirty
echo "docs: every crate documented without warnings; crates package; no conflict markers"
