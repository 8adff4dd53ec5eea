/*
 * Shared declarations of the testbed's fake Xen libraries.
 *
 * The real xenstored (Xen 4.17) links against libxenctrl, libxenevtchn and
 * libxengnttab. The testbed replaces them with these fakes so the daemon runs
 * on a host without Xen. Everything lives under one per-testbed "instance
 * directory", named by $TESTBED_DIR in the daemon's environment:
 *
 *   $TESTBED_DIR/page/<domid>       4096-byte file: the domain's ring page
 *                                    (page/0 is dom0's page, i.e. xsd_kva)
 *   $TESTBED_DIR/dom/<domid>        domain state: "running", "dying",
 *                                    "shutdown" or "crashed" (dom0: implicit)
 *   $TESTBED_DIR/ev/d<domid>p<port> datagram socket: daemon side of the event
 *                                    channel bound to (domid, remote port)
 *   $TESTBED_DIR/ev/g<domid>p<port> datagram socket: the guest side
 *   $TESTBED_DIR/ev/virq<n>         datagram socket: the daemon's VIRQ n
 *   $TESTBED_DIR/xsd_port           dom0's event channel port (text)
 *
 * An event is one datagram; a non-empty socket queue is a pending event.
 * Nothing here is thread-safe beyond what single-threaded xenstored needs.
 */
#ifndef TESTBED_FAKE_H
#define TESTBED_FAKE_H

#include <stdint.h>

/* The environment variable naming the instance directory. */
#define TESTBED_DIR_ENV "TESTBED_DIR"

/* Longest path we build; a unix socket path must also fit sun_path (108). */
#define TESTBED_PATH_MAX 4096

/*
 * Formats "$TESTBED_DIR/<suffix>" into buf. Returns 0, or -1 with errno set
 * (ENOENT when $TESTBED_DIR is unset, ENAMETOOLONG when it does not fit).
 */
int testbed_path(char *buf, unsigned long size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
