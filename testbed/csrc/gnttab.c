/*
 * Fake libxengnttab.so.1 for xenstored.
 *
 * xenstored maps a domain's ring with the reserved grant reference
 * GNTTAB_RESERVED_XENSTORE; the fake maps the domain's page file
 * "$TESTBED_DIR/page/<domid>" instead, shared, so the testbed (or QEMU, via
 * the ivshmem server) sees every byte the daemon writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake.h"

#define PAGE_SIZE 4096
/* The one grant a toolstack sets up for xenstored (xen/grant_table.h). */
#define GNTTAB_RESERVED_XENSTORE 1

typedef uint32_t grant_ref_t;
struct xentoollog_logger;

typedef struct xengnttab_handle {
	int unused;
} xengnttab_handle;

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
				 unsigned int open_flags)
{
	(void)logger;
	(void)open_flags;
	return calloc(1, sizeof(xengnttab_handle));
}

int xengnttab_close(xengnttab_handle *xgt)
{
	free(xgt);
	return 0;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
	(void)xgt;
	(void)nr_grants;
	return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid,
			      grant_ref_t ref, int prot)
{
	char path[TESTBED_PATH_MAX];
	void *addr;
	int fd, saved;

	(void)xgt;
	/* No toolstack here grants anything else. */
	if (ref != GNTTAB_RESERVED_XENSTORE) {
		errno = EINVAL;
		return NULL;
	}
	if (testbed_path(path, sizeof(path), "page/%u", domid) < 0)
		return NULL;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	addr = mmap(NULL, PAGE_SIZE, prot, MAP_SHARED, fd, 0);
	saved = errno;
	close(fd);
	errno = saved;
	return addr == MAP_FAILED ? NULL : addr;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address,
		    uint32_t count)
{
	(void)xgt;
	return munmap(start_address, (size_t)count * PAGE_SIZE);
}
