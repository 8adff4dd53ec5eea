/*
 * dom0's driver of the real-Xen xenstore comparison (`realxen bench`):
 *
 *   xsbench_driver SAMPLES MILLIS NAME=DOMID...
 *
 * Each guest serves data/xsbench/ (see dom0/xsbench_guest.c, the Linux
 * guest, and tests/xen_xsbench.rs, the kernel's). For SAMPLES rounds, for
 * each workload, each guest takes one sample; the guests alternate which
 * goes first. Every time and CPU figure is taken here, on dom0's clock and
 * from the hypervisor's per-domain CPU accounting (xc_domain_getinfo's
 * cpu_time, the figure behind `xl list`'s Time column, in nanoseconds):
 *
 *   read1, write1, read4, txn: write cmd = "SEQ WORKLOAD MILLIS", wait for
 *     done = "SEQ OPS"; operations per second = OPS / the time between the
 *     two, CPU per operation = the guest's CPU time over it / OPS.
 *   watch: for MILLIS, write ping = i, wait until pong = i (the guest's
 *     watch callback read ping and wrote pong); the round trips' p50 and
 *     p99, and the guest's CPU time per round trip.
 *
 * Prints one line per sample, `xsbench: NAME WORKLOAD key=value ...`, then
 * sends each guest "quit". Exits 1 with a message on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenstore.h>

#define MAX_GUESTS 4
/* A guest that says nothing for this long is stuck, not slow. */
#define STUCK_S 300

struct guest {
	const char *name;
	unsigned domid;
	char home[64];
};

static struct xs_handle *xs;
static xc_interface *xc;
static unsigned long seq;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "xsbench_driver: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t cpu_ns(const struct guest *g)
{
	xc_dominfo_t info;
	if (xc_domain_getinfo(xc, g->domid, 1, &info) != 1 || info.domid != g->domid)
		fail("no CPU time for %s (domain %u): %s", g->name, g->domid, strerror(errno));
	return info.cpu_time;
}

static char *node(const struct guest *g, const char *leaf)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/data/xsbench/%s", g->home, leaf);
	return path;
}

static void write_node(const struct guest *g, const char *leaf, const char *value)
{
	if (!xs_write(xs, XBT_NULL, node(g, leaf), value, strlen(value)))
		fail("writing %s: %s", node(g, leaf), strerror(errno));
}

/* The node's value (malloc'ed, NUL-terminated), or NULL if absent. */
static char *read_node(const struct guest *g, const char *leaf)
{
	unsigned len;
	char *v = xs_read(xs, XBT_NULL, node(g, leaf), &len);
	if (!v && errno != ENOENT)
		fail("reading %s: %s", node(g, leaf), strerror(errno));
	return v;
}

/* What the alarm's handler says: set before each wait (the handler only
   writes it, which is async-signal-safe). */
static char stuck_message[256];

static void stuck(int sig)
{
	(void)sig;
	if (write(2, stuck_message, strlen(stuck_message)) < 0)
		_exit(2);
	_exit(1);
}

/* Waits for the next event of any watch; the alarm set by `await` ends a
   wait that lasts STUCK_S. */
static void next_event(void)
{
	unsigned n;
	char **event = xs_read_watch(xs, &n);
	if (!event)
		fail("reading watch events: %s", strerror(errno));
	free(event);
}

/* Watches `leaf` of `g` until its value satisfies `done`; returns it. */
static char *await(const struct guest *g, const char *leaf, int (*done)(const char *, void *),
		   void *arg)
{
	snprintf(stuck_message, sizeof stuck_message,
		 "xsbench_driver: %s said nothing for %d s (waiting on %s)\n", g->name, STUCK_S,
		 node(g, leaf));
	alarm(STUCK_S);
	for (;;) {
		char *v = read_node(g, leaf);
		if (v && done(v, arg)) {
			alarm(0);
			return v;
		}
		free(v);
		next_event();
	}
}

static int is_ready(const char *v, void *arg)
{
	(void)arg;
	return !strcmp(v, "1");
}

static int has_seq(const char *v, void *arg)
{
	return strtoul(v, NULL, 10) == *(unsigned long *)arg;
}

static int equals(const char *v, void *arg)
{
	return !strcmp(v, arg);
}

static void watch(const struct guest *g, const char *leaf)
{
	if (!xs_watch(xs, node(g, leaf), leaf))
		fail("watching %s: %s", node(g, leaf), strerror(errno));
}

static void unwatch(const struct guest *g, const char *leaf)
{
	xs_unwatch(xs, node(g, leaf), leaf);
	/* Events still queued for it are dropped by the next await's reads. */
}

/* One sample of a guest-timed workload: the guest runs it for `millis`. */
static void sample_workload(const struct guest *g, const char *workload, unsigned millis)
{
	char cmd[64];
	unsigned long s = ++seq;
	watch(g, "done");
	snprintf(cmd, sizeof cmd, "%lu %s %u", s, workload, millis);
	uint64_t cpu0 = cpu_ns(g), t0 = now_ns();
	write_node(g, "cmd", cmd);
	char *done = await(g, "done", has_seq, &s);
	uint64_t t1 = now_ns(), cpu1 = cpu_ns(g);
	unwatch(g, "done");
	char *rest;
	strtoul(done, &rest, 10);
	unsigned long long ops = strtoull(rest, &rest, 10);
	if (*rest || ops == 0)
		fail("%s %s answered %s", g->name, workload, done);
	free(done);
	double secs = (double)(t1 - t0) / 1e9;
	printf("xsbench: %s %s ops=%llu secs=%.3f ops_per_s=%.2f cpu_us_per_op=%.1f\n", g->name,
	       workload, ops, secs, (double)ops / secs, (double)(cpu1 - cpu0) / 1e3 / (double)ops);
	fflush(stdout);
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One sample of watch round trips, as many as fit in `millis`. */
static void sample_watch(const struct guest *g, unsigned millis)
{
	static uint64_t rtt[100000];
	size_t n = 0;
	watch(g, "pong");
	uint64_t cpu0 = cpu_ns(g), start = now_ns();
	while (n < sizeof rtt / sizeof rtt[0] && now_ns() - start < (uint64_t)millis * 1000000u) {
		char value[32];
		snprintf(value, sizeof value, "%lu", ++seq);
		uint64_t t0 = now_ns();
		write_node(g, "ping", value);
		free(await(g, "pong", equals, value));
		rtt[n++] = now_ns() - t0;
	}
	uint64_t cpu1 = cpu_ns(g);
	unwatch(g, "pong");
	qsort(rtt, n, sizeof rtt[0], by_value);
	printf("xsbench: %s watch round_trips=%zu p50_us=%.1f p99_us=%.1f cpu_us_per_op=%.1f\n",
	       g->name, n, (double)rtt[n / 2] / 1e3, (double)rtt[(n * 99) / 100] / 1e3,
	       (double)(cpu1 - cpu0) / 1e3 / (double)n);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const char *workloads[] = { "read1", "write1", "read4", "txn", "watch" };
	struct guest guests[MAX_GUESTS];
	int count = 0;
	if (argc < 4 || argc - 3 > MAX_GUESTS)
		fail("usage: xsbench_driver SAMPLES MILLIS NAME=DOMID...");
	int samples = atoi(argv[1]);
	unsigned millis = (unsigned)atoi(argv[2]);
	for (int i = 3; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq)
			fail("%s is not NAME=DOMID", argv[i]);
		*eq = '\0';
		guests[count].name = argv[i];
		guests[count].domid = (unsigned)atoi(eq + 1);
		snprintf(guests[count].home, sizeof guests[count].home, "/local/domain/%u",
			 guests[count].domid);
		count++;
	}
	signal(SIGALRM, stuck);
	if (!(xs = xs_open(0)))
		fail("xs_open: %s", strerror(errno));
	if (!(xc = xc_interface_open(NULL, NULL, 0)))
		fail("xc_interface_open: %s", strerror(errno));
	for (int i = 0; i < count; i++) {
		watch(&guests[i], "ready");
		free(await(&guests[i], "ready", is_ready, NULL));
		unwatch(&guests[i], "ready");
	}
	for (int s = 0; s < samples; s++)
		for (size_t w = 0; w < sizeof workloads / sizeof workloads[0]; w++)
			for (int i = 0; i < count; i++) {
				/* Who goes first alternates between rounds. */
				const struct guest *g = &guests[(s % 2 ? count - 1 - i : i)];
				if (!strcmp(workloads[w], "watch"))
					sample_watch(g, millis);
				else
					sample_workload(g, workloads[w], millis);
			}
	for (int i = 0; i < count; i++) {
		char cmd[32];
		unsigned long s = ++seq;
		snprintf(cmd, sizeof cmd, "%lu quit 0", s);
		watch(&guests[i], "done");
		write_node(&guests[i], "cmd", cmd);
		free(await(&guests[i], "done", has_seq, &s));
	}
	xs_close(xs);
	return 0;
}
