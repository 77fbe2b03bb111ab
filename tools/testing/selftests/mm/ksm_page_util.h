/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Page-level helpers of our KSM selftests: page contents, the frames and
 * swap entries behind them, per-process KSM counters, knobs to restore,
 * a memory cgroup of our own.
 */
#ifndef KSM_PAGE_UTIL_H
#define KSM_PAGE_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "ksm_test_util.h"

/*
 * Evaluate @cond every few milliseconds until it holds or @limit seconds
 * have passed; the last result.  Waits end on the condition, never on time.
 */
#define WAIT_UNTIL(cond, limit) ({				\
	double __end = now() + (limit);				\
	bool __ok;						\
								\
	while (!(__ok = (cond)) && now() < __end)		\
		usleep(5000);					\
	__ok;							\
})

/* Documentation/admin-guide/mm/pagemap.rst */
#define PM_PRESENT	0x8000000000000000ULL	/* bit 63 */
#define PM_SWAP		0x4000000000000000ULL	/* bit 62 */
#define PM_PFN_MASK	0x007fffffffffffffULL	/* bits 0-54 */

#define CGROOT "/sys/fs/cgroup/"

/*
 * The step memcg_enter() failed at.  After 0 or MEMCG_NO_MOVE there is a
 * cgroup made to leave: memcg_leave() undoes it.
 */
enum memcg_fail {
	MEMCG_NO_V2 = 1,	/* no cgroup.subtree_control to read */
	MEMCG_NO_CTRL,		/* the memory controller would not turn on */
	MEMCG_NO_DIR,		/* mkdir of the cgroup failed: errno says why */
	MEMCG_NO_MOVE,		/* made, but we could not move into it */
};

/* The knobs our tests turn, saved in setup and restored in teardown. */
struct ksm_knobs {
	long run, pages_to_scan, sleep_millisecs, use_zero_pages;
};

void ksm_knobs_save(struct ksm_knobs *k);
void ksm_knobs_restore(const struct ksm_knobs *k);
int ksm_flat_out(struct ksm_knobs *knobs);
const char *ksm_unfit(void);

long page_size(void);
char *map_anon(int pages);
void fill_page(char *page, unsigned int seed);
bool page_holds(const char *page, unsigned int seed);
bool page_zero(const char *page);
int pages_holding(char *p, int pages, unsigned int seed);

int pagemap_read(void *addr, int pages, uint64_t *entries);
unsigned long long frame_of(void *addr);
int same_frames(char *a, char *b, int pages);
int swapped_pages(char *p, int pages);

long proc_merging_pages(pid_t pid);
long proc_ksm_stat(pid_t pid, const char *key);
bool wait_scans(long n, double limit);
long smaps_kb(void *addr, const char *field);
int write_str(const char *path, const char *s);
int ksm_knob_read(const char *name, char *buf, size_t len);
int ksm_knob_write(const char *name, const char *val);
int memcg_enter(const char *name, bool *memory_was_on);
void memcg_leave(const char *name, bool memory_was_on);

#endif /* KSM_PAGE_UTIL_H */
