/*
 * xc_dominfo_t exactly as Xen 4.17's xenctrl.h lays it out on x86_64 (112
 * bytes). Declared here so the fakes build without libxen-dev; build.rs
 * checks it against the real header whenever that header is installed.
 */
#ifndef TESTBED_XC_DOMINFO_H
#define TESTBED_XC_DOMINFO_H

#include <stdint.h>

typedef struct xc_dominfo {
	uint32_t domid;
	uint32_t ssidref;
	unsigned int dying:1, crashed:1, shutdown:1,
		     paused:1, blocked:1, running:1,
		     hvm:1, debugged:1, xenstore:1, hap:1;
	unsigned int shutdown_reason;
	unsigned long nr_pages;
	unsigned long nr_outstanding_pages;
	unsigned long nr_shared_pages;
	unsigned long nr_paged_pages;
	unsigned long shared_info_frame;
	uint64_t cpu_time;
	unsigned long max_memkb;
	unsigned int nr_online_vcpus;
	unsigned int max_vcpu_id;
	uint8_t handle[16];
	unsigned int cpupool;
	uint8_t gpaddr_bits;
	struct {
		uint32_t emulation_flags;
		uint32_t misc_flags;
	} arch_config;
} xc_dominfo_t;

_Static_assert(sizeof(xc_dominfo_t) == 112, "Xen 4.17 x86_64 layout");

#endif
