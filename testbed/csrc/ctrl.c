/*
 * Fake libxenctrl.so.4.17 for xenstored: only what the daemon imports.
 *
 * xc_domain_getinfo() reports dom0 always running and every other domain
 * that has a state file "$TESTBED_DIR/dom/<domid>" in that state. The
 * testbed writes "running" before it introduces a domain and may later write
 * "dying", "shutdown" or "crashed" (then kick VIRQ_DOM_EXC) to make the
 * daemon release it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "xc_dominfo.h"

struct xentoollog_logger;

typedef struct xc_interface_core {
	int unused;
} xc_interface;

/* Highest domid a guest can have (DOMID_FIRST_RESERVED - 1). */
#define MAX_GUEST_DOMID 0x7fefU

xc_interface *xc_interface_open(struct xentoollog_logger *logger,
				struct xentoollog_logger *dombuild_logger,
				unsigned int open_flags)
{
	(void)logger;
	(void)dombuild_logger;
	(void)open_flags;
	return calloc(1, sizeof(xc_interface));
}

int xc_interface_close(xc_interface *xch)
{
	free(xch);
	return 0;
}

/* Reads dom/<domid>; returns 0 if the domain exists (state in *state). */
static int read_state(uint32_t domid, char *state, size_t size)
{
	char path[TESTBED_PATH_MAX];
	FILE *f;
	size_t n;

	if (domid == 0) {
		snprintf(state, size, "running");
		return 0;
	}
	if (testbed_path(path, sizeof(path), "dom/%u", domid) < 0)
		return -1;
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(state, 1, size - 1, f);
	fclose(f);
	state[n] = 0;
	state[strcspn(state, "\n")] = 0;
	return 0;
}

static void fill(xc_dominfo_t *info, uint32_t domid, const char *state)
{
	memset(info, 0, sizeof(*info));
	info->domid = domid;
	info->hvm = 1;
	info->xenstore = 1;
	info->nr_online_vcpus = 1;
	if (!strcmp(state, "dying")) {
		info->dying = 1;
	} else if (!strcmp(state, "shutdown")) {
		info->shutdown = 1;
		info->shutdown_reason = 0; /* SHUTDOWN_poweroff */
	} else if (!strcmp(state, "crashed")) {
		info->shutdown = 1;
		info->crashed = 1;
		info->shutdown_reason = 3; /* SHUTDOWN_crash */
	} else {
		info->running = 1;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Fills up to max_doms entries for the existing domains with
 * domid >= first_domid, in domid order; returns how many.
 */
int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
		      unsigned int max_doms, xc_dominfo_t *info)
{
	char path[TESTBED_PATH_MAX], state[32];
	uint32_t ids[1024];
	unsigned int nids = 0, i, filled = 0;
	struct dirent *de;
	DIR *d;

	(void)xch;
	if (testbed_path(path, sizeof(path), "dom") < 0)
		return -1;
	d = opendir(path);
	if (!d)
		return -1;
	ids[nids++] = 0;
	while ((de = readdir(d)) && nids < sizeof(ids) / sizeof(ids[0])) {
		char *end;
		unsigned long id = strtoul(de->d_name, &end, 10);

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end ||
		    id == 0 || id > MAX_GUEST_DOMID)
			continue;
		ids[nids++] = (uint32_t)id;
	}
	closedir(d);
	qsort(ids, nids, sizeof(ids[0]), cmp_u32);
	for (i = 0; i < nids && filled < max_doms; i++) {
		if (ids[i] < first_domid)
			continue;
		if (read_state(ids[i], state, sizeof(state)) < 0)
			continue; /* removed meanwhile */
		fill(&info[filled++], ids[i], state);
	}
	return (int)filled;
}
