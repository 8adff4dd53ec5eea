#!/bin/sh
# Make sure the real xenstored is available (download + extract it once if
# needed) and print where it is:
#   daemon=/path/to/xenstored
#   daemon_version=4.17.x...
# Exits non-zero, saying why, if it cannot be obtained. Honours $XENSTORED,
# $XENSTORED_VERSION and $TESTBED_CACHE (see testbed/README.md).
set -eu
cd "$(dirname "$0")/.."
exec cargo run --quiet -p testbed --bin testbed -- fetch
