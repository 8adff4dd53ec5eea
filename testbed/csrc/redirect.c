/*
 * LD_PRELOAD shim for xenstored (only the daemon gets it).
 *
 * 1. Without -D the daemon sets up dom0's ring from /proc/xen/xsd_port (the
 *    event channel port, as text) and /proc/xen/xsd_kva (the page, mmapped).
 *    open() of those two is redirected into the instance directory.
 * 2. syslog() goes to "$TESTBED_DIR/syslog" instead of the host's syslog, so
 *    the daemon's warnings (write rate limit, memory quota) are kept with
 *    the testbed and shown when it fails.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"

typedef int (*open_fn)(const char *, int, ...);

/* Returns the path to open instead of path (buf is scratch space). */
static const char *redirect(const char *path, char *buf, size_t size)
{
	if (!path)
		return path;
	if (!strcmp(path, "/proc/xen/xsd_port") &&
	    testbed_path(buf, size, "xsd_port") == 0)
		return buf;
	if (!strcmp(path, "/proc/xen/xsd_kva") &&
	    testbed_path(buf, size, "page/0") == 0)
		return buf;
	return path;
}

static int forward(const char *name, const char *path, int flags, va_list ap)
{
	char buf[TESTBED_PATH_MAX];
	open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE))
		mode = va_arg(ap, mode_t);
	return real(redirect(path, buf, sizeof(buf)), flags, mode);
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	int fd;

	va_start(ap, flags);
	fd = forward("open", path, flags, ap);
	va_end(ap);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	int fd;

	va_start(ap, flags);
	fd = forward("open64", path, flags, ap);
	va_end(ap);
	return fd;
}

void vsyslog(int priority, const char *fmt, va_list ap)
{
	char path[TESTBED_PATH_MAX];
	struct timespec ts;
	FILE *f;

	if (testbed_path(path, sizeof(path), "syslog") < 0)
		return;
	f = fopen(path, "ae");
	if (!f)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(f, "[%ld.%03ld] <%d> ", (long)ts.tv_sec,
		ts.tv_nsec / 1000000, LOG_PRI(priority));
	vfprintf(f, fmt, ap);
	if (!*fmt || fmt[strlen(fmt) - 1] != '\n')
		fputc('\n', f);
	fclose(f);
}

void syslog(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsyslog(priority, fmt, ap);
	va_end(ap);
}

/* What glibc's fortified syslog() calls become (the daemon imports this). */
void __syslog_chk(int priority, int flag, const char *fmt, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, fmt);
	vsyslog(priority, fmt, ap);
	va_end(ap);
}

void openlog(const char *ident, int option, int facility)
{
	(void)ident;
	(void)option;
	(void)facility;
}
