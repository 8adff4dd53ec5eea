/*
 * Compiled by build.rs only when Xen's own headers are installed: checks
 * that our copy of xc_dominfo_t matches the real one field by field.
 */
#include <stddef.h>
#include <xenctrl.h>

#define xc_dominfo testbed_xc_dominfo
#define xc_dominfo_t testbed_xc_dominfo_t
#include "xc_dominfo.h"
#undef xc_dominfo
#undef xc_dominfo_t

#define SAME(f) _Static_assert(offsetof(xc_dominfo_t, f) == \
			       offsetof(testbed_xc_dominfo_t, f), #f)
SAME(domid);
SAME(shutdown_reason);
SAME(nr_pages);
SAME(cpu_time);
SAME(nr_online_vcpus);
SAME(handle);
SAME(cpupool);
SAME(gpaddr_bits);
SAME(arch_config);
_Static_assert(sizeof(xc_dominfo_t) == sizeof(testbed_xc_dominfo_t), "size");
