/*
 * Fake libxenevtchn.so.1 for xenstored.
 *
 * Model: every bound local port owns one unix datagram socket; the handle's
 * fd is an epoll fd watching all of them, so it is readable exactly when some
 * port has a pending event (a queued datagram). Per-port sockets matter: with
 * one shared socket a full queue would have to drop a kick, and the dropped
 * kick could be the only one of another domain. With one socket per port a
 * full queue already means "pending", so dropping more kicks there is the
 * same coalescing a real event channel's pending bit does.
 *
 * xenevtchn_pending() blocks until an event arrives, as reading the real
 * /dev/xen/evtchn does; xenstored only calls it after poll() said readable.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake.h"

typedef uint32_t evtchn_port_t;
typedef int xenevtchn_port_or_error_t;
struct xentoollog_logger;

/* Local ports 1..MAX_PORTS-1; port 0 is never valid, as in Xen. */
#define MAX_PORTS 1024

struct bound_port {
	int fd;                     /* -1: free slot */
	int is_virq;
	uint32_t domid;             /* interdomain: the remote domain */
	uint32_t remote_port;       /* interdomain: the remote domain's port */
	struct sockaddr_un addr;    /* our own socket's address (to unlink) */
};

typedef struct xenevtchn_handle {
	int epoll_fd;
	struct bound_port ports[MAX_PORTS];
} xenevtchn_handle;

/* Builds the address of an event socket, "$TESTBED_DIR/ev/<name>". */
static int make_addr(struct sockaddr_un *sa, const char *kind, uint32_t a,
		     uint32_t b)
{
	char path[TESTBED_PATH_MAX];
	int rc;

	if (kind[0] == 'v')
		rc = testbed_path(path, sizeof(path), "ev/virq%u", a);
	else
		rc = testbed_path(path, sizeof(path), "ev/%s%up%u", kind, a, b);
	if (rc < 0)
		return -1;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	strcpy(sa->sun_path, path);
	return 0;
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
				 unsigned int open_flags)
{
	xenevtchn_handle *h;
	int i;

	(void)logger;
	(void)open_flags;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epoll_fd < 0) {
		free(h);
		return NULL;
	}
	for (i = 0; i < MAX_PORTS; i++)
		h->ports[i].fd = -1;
	return h;
}

/* Live update hands the fd over; the fake does not support that. */
xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd,
				   unsigned int open_flags)
{
	(void)logger;
	(void)fd;
	(void)open_flags;
	errno = EOPNOTSUPP;
	return NULL;
}

static void release_port(xenevtchn_handle *h, evtchn_port_t port)
{
	struct bound_port *p = &h->ports[port];

	epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	unlink(p->addr.sun_path);
	p->fd = -1;
}

int xenevtchn_close(xenevtchn_handle *h)
{
	evtchn_port_t port;

	if (!h)
		return 0;
	for (port = 1; port < MAX_PORTS; port++)
		if (h->ports[port].fd >= 0)
			release_port(h, port);
	close(h->epoll_fd);
	free(h);
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *h)
{
	return h->epoll_fd;
}

/*
 * Binds a fresh local port to a new socket. kind is "d" (daemon side of an
 * interdomain channel with domain a, remote port b) or "virq" (VIRQ a).
 */
static xenevtchn_port_or_error_t bind_port(xenevtchn_handle *h,
					   const char *kind, uint32_t a,
					   uint32_t b)
{
	struct epoll_event ev;
	struct bound_port *p;
	evtchn_port_t port;
	int saved;

	for (port = 1; port < MAX_PORTS; port++)
		if (h->ports[port].fd < 0)
			break;
	if (port == MAX_PORTS) {
		errno = ENOSPC;
		return -1;
	}
	p = &h->ports[port];
	if (make_addr(&p->addr, kind, a, b) < 0)
		return -1;
	p->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -1;
	/* A previous daemon of this testbed may have left its socket. */
	unlink(p->addr.sun_path);
	if (bind(p->fd, (struct sockaddr *)&p->addr, sizeof(p->addr)) < 0)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = port;
	if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, p->fd, &ev) < 0)
		goto fail;
	p->is_virq = kind[0] == 'v';
	p->domid = a;
	p->remote_port = b;
	return port;

fail:
	saved = errno;
	close(p->fd);
	unlink(p->addr.sun_path);
	p->fd = -1;
	errno = saved;
	return -1;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h,
						     uint32_t domid,
						     evtchn_port_t remote_port)
{
	return bind_port(h, "d", domid, remote_port);
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *h,
					      unsigned int virq)
{
	return bind_port(h, "virq", virq, 0);
}

static struct bound_port *lookup(xenevtchn_handle *h, evtchn_port_t port)
{
	if (port == 0 || port >= MAX_PORTS || h->ports[port].fd < 0) {
		errno = EINVAL;
		return NULL;
	}
	return &h->ports[port];
}

int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
	if (!lookup(h, port))
		return -1;
	release_port(h, port);
	return 0;
}

/*
 * Kicks the remote end. A guest that is not listening (no socket yet, or
 * gone) loses the kick, like a real port nobody is bound to; a full guest
 * queue already holds a pending event, so that kick coalesces.
 */
int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
	struct sockaddr_un to;
	struct bound_port *p = lookup(h, port);
	const char kick = 1;

	if (!p)
		return -1;
	if (p->is_virq)
		return 0;
	if (make_addr(&to, "g", p->domid, p->remote_port) < 0)
		return -1;
	if (sendto(p->fd, &kick, 1, MSG_DONTWAIT, (struct sockaddr *)&to,
		   sizeof(to)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
	return 0;
}

/* Returns the next port with an event, consuming all its queued kicks. */
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
	struct epoll_event ev;
	char buf[64];
	int n;

	do {
		n = epoll_wait(h->epoll_fd, &ev, 1, -1);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (!lookup(h, ev.data.u32))
		return -1;
	while (recv(h->ports[ev.data.u32].fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
	return ev.data.u32;
}

/* Ports are never masked in this model, so unmasking is a no-op. */
int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port)
{
	return lookup(h, port) ? 0 : -1;
}
