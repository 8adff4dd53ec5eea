/*
 * The Linux side of the real-Xen xenstore comparison (`realxen bench`):
 * init of a Linux PVH domU (dom0's own Debian kernel, nothing else in its
 * initramfs). It speaks the wire protocol (Xen's io/xs_wire.h) on
 * /dev/xen/xenbus, the interface a Linux program without libxenstore uses,
 * with one file per thread and one request in flight per file.
 *
 * It serves the same commands as the kernel's image (tests/xen_xsbench.rs),
 * all under its home's data/xsbench/:
 *   cmd   = "SEQ WORKLOAD MILLIS", written by dom0's driver: run WORKLOAD
 *           (read1, write1, read4, txn) for MILLIS on this guest's clock,
 *           then write done = "SEQ OPS"; "SEQ quit 0" powers off.
 *   ping  = a value written by dom0: the watch callback reads it and writes
 *           pong = that value (the watch round trip; dom0 times it).
 *   ready = "1" once both watches are set.
 * Any failure writes done = "SEQ error: WHAT" and dom0's driver fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Message types and limits of io/xs_wire.h. */
enum {
	XS_READ = 2,
	XS_WATCH = 4,
	XS_TRANSACTION_START = 6,
	XS_TRANSACTION_END = 7,
	XS_WRITE = 11,
	XS_WATCH_EVENT = 15,
	XS_ERROR = 16,
};
#define PAYLOAD_MAX 4096

struct header {
	uint32_t type, req_id, tx_id, len;
};

struct message {
	struct header h;
	char body[PAYLOAD_MAX + 1]; /* NUL-terminated for convenience */
};

/* The 32-byte value every read returns and every write stores. */
static const char VALUE[] = "0123456789abcdef0123456789abcdef";
#define THREADS 4

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("xsbench_guest: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static int open_xenbus(void)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd = open("/dev/xen/xenbus", O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		usleep(100 * 1000);
	}
	say("cannot open /dev/xen/xenbus: %s", strerror(errno));
	return -1;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_message(int fd, struct message *m)
{
	if (read_full(fd, &m->h, sizeof m->h) < 0 || m->h.len > PAYLOAD_MAX)
		return -1;
	if (read_full(fd, m->body, m->h.len) < 0)
		return -1;
	m->body[m->h.len] = '\0';
	return 0;
}

/* The errno an XS_ERROR body names (the ones this program can meet). */
static int error_code(const char *name)
{
	if (!strcmp(name, "ENOENT"))
		return ENOENT;
	if (!strcmp(name, "EAGAIN"))
		return EAGAIN;
	if (!strcmp(name, "EACCES"))
		return EACCES;
	return EIO;
}

/*
 * Sends one request and waits for its reply on `fd`. Returns 0 and the reply in `reply`, or
 * an errno (the daemon's error, or EIO when the file fails).
 */
static int call(int fd, uint32_t type, uint32_t tx, const char *payload, size_t len,
		struct message *reply)
{
	static _Thread_local uint32_t req_id;
	char out[sizeof(struct header) + PAYLOAD_MAX];
	struct header h = { type, ++req_id, tx, (uint32_t)len };
	if (len > PAYLOAD_MAX)
		return EINVAL;
	memcpy(out, &h, sizeof h);
	memcpy(out + sizeof h, payload, len);
	if (write(fd, out, sizeof h + len) != (ssize_t)(sizeof h + len))
		return EIO;
	/* Only XS_WATCH is sent on a file with a watch: Linux may queue the
	   watch's initial event before its reply. Nothing waits for that one. */
	do {
		if (read_message(fd, reply) < 0)
			return EIO;
	} while (reply->h.type == XS_WATCH_EVENT);
	if (reply->h.type == XS_ERROR)
		return error_code(reply->body);
	return reply->h.type == type ? 0 : EIO;
}

/* `path` NUL `value` (no NUL after the value), as XS_WRITE wants. */
static int write_node(int fd, uint32_t tx, const char *path, const char *value)
{
	char payload[PAYLOAD_MAX];
	size_t plen = strlen(path) + 1, vlen = strlen(value);
	struct message reply;
	if (plen + vlen > sizeof payload)
		return EINVAL;
	memcpy(payload, path, plen);
	memcpy(payload + plen, value, vlen);
	return call(fd, XS_WRITE, tx, payload, plen + vlen, &reply);
}

static int read_node(int fd, const char *path, struct message *reply)
{
	return call(fd, XS_READ, 0, path, strlen(path) + 1, reply);
}

static int add_watch(int fd, const char *path, const char *token)
{
	char payload[256];
	struct message reply;
	int n = snprintf(payload, sizeof payload, "%s%c%s", path, '\0', token);
	return call(fd, XS_WATCH, 0, payload, (size_t)n + 1, &reply);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One read; EIO if the value is not the one written at start. */
static int read_once(int fd)
{
	struct message reply;
	int e = read_node(fd, "data/xsbench/value", &reply);
	if (e)
		return e;
	return reply.h.len == sizeof VALUE - 1 && !memcmp(reply.body, VALUE, reply.h.len) ? 0
											  : EIO;
}

/* One committed transaction writing one node; EAGAIN is retried. */
static int commit_once(int fd)
{
	for (;;) {
		struct message reply;
		int e = call(fd, XS_TRANSACTION_START, 0, "", 1, &reply);
		if (e)
			return e;
		uint32_t tx = (uint32_t)strtoul(reply.body, NULL, 10);
		e = write_node(fd, tx, "data/xsbench/t", VALUE);
		int end = call(fd, XS_TRANSACTION_END, tx, e ? "F" : "T", 2, &reply);
		if (e)
			return e;
		if (end != EAGAIN)
			return end;
	}
}

struct worker {
	pthread_t thread;
	int fd;
	uint64_t until_ns;
	uint64_t ops;
	int error;
};

static void *read_until(void *arg)
{
	struct worker *w = arg;
	do {
		if ((w->error = read_once(w->fd)))
			break;
		w->ops++;
	} while (now_ns() < w->until_ns);
	return NULL;
}

static int fds[THREADS]; /* request files: fds[0] for one thread, all four for read4 */

/* Runs `workload` for `millis`, at least once; 0 and the count in *ops, or
   an errno. */
static int run(const char *workload, uint64_t millis, uint64_t *ops)
{
	uint64_t until = now_ns() + millis * 1000000u;
	*ops = 0;
	if (!strcmp(workload, "read4")) {
		struct worker w[THREADS];
		int error = 0;
		for (int i = 0; i < THREADS; i++) {
			w[i] = (struct worker){ .fd = fds[i], .until_ns = until };
			if (pthread_create(&w[i].thread, NULL, read_until, &w[i]))
				return EAGAIN;
		}
		for (int i = 0; i < THREADS; i++) {
			pthread_join(w[i].thread, NULL);
			*ops += w[i].ops;
			error = error ? error : w[i].error;
		}
		return error;
	}
	do { /* at least once: a guest descheduled past `millis` still has a sample */
		int e;
		if (!strcmp(workload, "read1"))
			e = read_once(fds[0]);
		else if (!strcmp(workload, "write1"))
			e = write_node(fds[0], 0, "data/xsbench/w", VALUE);
		else if (!strcmp(workload, "txn"))
			e = commit_once(fds[0]);
		else
			return EINVAL;
		if (e)
			return e;
		(*ops)++;
	} while (now_ns() < until);
	return 0;
}

static int ping_events, ping_calls; /* the ping watch's files */

/* The ping watch's thread: each event, read ping and write it to pong. */
static void *answer_pings(void *arg)
{
	int events = ping_events, calls = ping_calls;
	struct message m, value;
	(void)arg;
	for (;;) {
		if (read_message(events, &m) < 0) {
			say("the ping watch's file failed");
			exit(1);
		}
		if (m.h.type != XS_WATCH_EVENT || read_node(calls, "data/xsbench/ping", &value))
			continue; /* the initial event, before any ping */
		if (write_node(calls, 0, "data/xsbench/pong", value.body)) {
			say("cannot write pong");
			exit(1);
		}
	}
	return NULL;
}

/* Waits for the next cmd event and returns its command, or -1. */
static int next_command(int events, unsigned long *seq, char *workload, uint64_t *millis)
{
	static unsigned long last;
	struct message m, value;
	for (;;) {
		if (read_message(events, &m) < 0)
			return -1;
		if (m.h.type != XS_WATCH_EVENT || read_node(fds[0], "data/xsbench/cmd", &value))
			continue;
		unsigned long long ms;
		if (sscanf(value.body, "%lu %15s %llu", seq, workload, &ms) != 3 || *seq <= last)
			continue; /* garbage, or a command already done */
		last = *seq;
		*millis = ms;
		return 0;
	}
}

static void console(void)
{
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) && errno != EBUSY)
		return;
	int fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

int main(void)
{
	console();
	int events = open_xenbus();
	if (events < 0)
		return 1;
	for (int i = 0; i < THREADS; i++)
		if ((fds[i] = open_xenbus()) < 0)
			return 1;
	if ((ping_events = open_xenbus()) < 0 || (ping_calls = open_xenbus()) < 0)
		return 1;
	pthread_t pinger;
	if (write_node(fds[0], 0, "data/xsbench/value", VALUE) ||
	    add_watch(events, "data/xsbench/cmd", "cmd") ||
	    add_watch(ping_events, "data/xsbench/ping", "ping") ||
	    pthread_create(&pinger, NULL, answer_pings, NULL) ||
	    write_node(fds[0], 0, "data/xsbench/ready", "1")) {
		say("cannot set up data/xsbench");
		return 1;
	}
	say("ready");
	for (;;) {
		unsigned long seq;
		char workload[16];
		uint64_t millis, ops;
		char done[96];
		if (next_command(events, &seq, workload, &millis) < 0) {
			say("the cmd watch's file failed");
			return 1;
		}
		if (!strcmp(workload, "quit")) {
			snprintf(done, sizeof done, "%lu 0", seq);
			write_node(fds[0], 0, "data/xsbench/done", done);
			say("quit");
			sync();
			reboot(RB_POWER_OFF);
			return 0;
		}
		int e = run(workload, millis, &ops);
		if (e)
			snprintf(done, sizeof done, "%lu error: %s: %s", seq, workload, strerror(e));
		else
			snprintf(done, sizeof done, "%lu %llu", seq, (unsigned long long)ops);
		if (write_node(fds[0], 0, "data/xsbench/done", done)) {
			say("cannot write done");
			return 1;
		}
	}
}
