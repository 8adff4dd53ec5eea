/* Path helper shared by the fakes (compiled into each of them). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fake.h"

int testbed_path(char *buf, unsigned long size, const char *fmt, ...)
{
	const char *dir = getenv(TESTBED_DIR_ENV);
	va_list ap;
	int n, m;

	if (!dir || !*dir) {
		errno = ENOENT;
		return -1;
	}
	n = snprintf(buf, size, "%s/", dir);
	if (n < 0 || (unsigned long)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	va_start(ap, fmt);
	m = vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
	if (m < 0 || (unsigned long)m >= size - n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
