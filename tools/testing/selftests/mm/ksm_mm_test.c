// SPDX-License-Identifier: GPL-2.0
/*
 * Merged pages meet the rest of mm: they go out to swap (zram) and come
 * back, migrate between NUMA nodes and under compaction, and the subpages
 * of a THP merge.  After each trip the data must be byte for byte what
 * was written, sharing must hold where nothing broke it, and a write must
 * still change the writer's copy only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mempolicy.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#define PAGES 128
#define WAIT_S 30

#define ZRAM "/sys/block/zram0/"
#define CG_NAME "ksm_mm_test"
#define CG CGROOT CG_NAME "/"
#define THP "/sys/kernel/mm/transparent_hugepage/"

/* Two mergeable regions, page i of each holding seed i. */
static void map_pair(struct __test_metadata *_metadata, char **a, char **b)
{
	int i;

	*a = map_anon(PAGES);
	*b = map_anon(PAGES);
	ASSERT_NE(NULL, *a);
	ASSERT_NE(NULL, *b);
	for (i = 0; i < PAGES; i++) {
		fill_page(*a + i * page_size(), i);
		fill_page(*b + i * page_size(), i);
	}
	ASSERT_EQ(0, madvise(*a, PAGES * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(*b, PAGES * page_size(), MADV_MERGEABLE));
}

/* ... and merged page for page: each a[i] on the frame of b[i]. */
static void merge_pair(struct __test_metadata *_metadata, char **a, char **b)
{
	map_pair(_metadata, a, b);
	ASSERT_TRUE(WAIT_UNTIL(same_frames(*a, *b, PAGES) == PAGES, WAIT_S))
		TH_LOG("%d of %d pairs merged", same_frames(*a, *b, PAGES),
		       PAGES);
}

/*
 * Write the even pages of a: they change there and nowhere else, and no
 * written page stays on the frame of its partner in b.
 */
static void write_even_pages(struct __test_metadata *_metadata,
			     char *a, char *b)
{
	int i;

	for (i = 0; i < PAGES; i += 2)
		fill_page(a + i * page_size(), 1000 + i);
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_holds(a + i * page_size(), i % 2 ? i : 1000 + i))
			TH_LOG("a[%d]", i);
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	for (i = 0; i < PAGES; i += 2)
		EXPECT_EQ(0, same_frames(a + i * page_size(),
					 b + i * page_size(), 1))
			TH_LOG("pair %d still on one frame", i);
}

/* --- swap ------------------------------------------------------------- */

FIXTURE(swap) {
	struct ksm_knobs knobs;
	bool in_cgroup, memory_was_on;
};

FIXTURE_SETUP(swap)
{
	char err[128];
	int ret;

	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	if (access(ZRAM "disksize", F_OK))
		SKIP(return, "no zram0 (CONFIG_ZRAM)");
	if (read_long(ZRAM "disksize") > 0)
		SKIP(return, "zram0 is in use");
	ret = write_str(ZRAM "disksize", "64M");
	if (ret)
		SKIP(return, "zram0 disksize: %s", strerror(-ret));
	err[0] = '\0';
	if (system("mkswap /dev/zram0 >/dev/null 2>&1"))
		snprintf(err, sizeof(err), "mkswap /dev/zram0 failed");
	else if (swapon("/dev/zram0", 0))
		snprintf(err, sizeof(err), "swapon: %s", strerror(errno));
	if (err[0]) {
		write_str(ZRAM "reset", "1");
		SKIP(return, "%s", err);
	}
	ret = ksm_flat_out(&self->knobs);
	if (ret) {
		swapoff("/dev/zram0");
		write_str(ZRAM "reset", "1");
	}
	ASSERT_EQ(0, ret);
}

FIXTURE_TEARDOWN(swap)
{
	if (self->in_cgroup)
		memcg_leave(CG_NAME, self->memory_was_on);
	/* swapoff reads back whatever of ours is still out there. */
	swapoff("/dev/zram0");
	write_str(ZRAM "reset", "1");
	ksm_knobs_restore(&self->knobs);
}

/*
 * MADV_PAGEOUT leaves alone a page mapped more than once, so b goes
 * first: a's pages go out still KSM pages, each mapped once.
 */
TEST_F_TIMEOUT(swap, pageout_ksm_pages, 90)
{
	char *a, *b, *c;
	int swapped;

	merge_pair(_metadata, &a, &b);
	ASSERT_EQ(0, munmap(b, PAGES * page_size()));
	ASSERT_EQ(0, madvise(a, PAGES * page_size(), MADV_PAGEOUT));
	swapped = swapped_pages(a, PAGES);
	ASSERT_GT(swapped, 0) TH_LOG("no page of %d went out to swap", PAGES);

	/* Back in, as they were. */
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(0, swapped_pages(a, PAGES));

	/* Pages that came back from swap merge again. */
	map_pair(_metadata, &b, &c);
	ASSERT_TRUE(WAIT_UNTIL(same_frames(a, b, PAGES) == PAGES &&
			       same_frames(a, c, PAGES) == PAGES, WAIT_S))
		TH_LOG("%d, %d of %d merged", same_frames(a, b, PAGES),
		       same_frames(a, c, PAGES), PAGES);
	write_even_pages(_metadata, a, b);
	EXPECT_EQ(PAGES / 2, same_frames(a, b, PAGES));
	EXPECT_EQ(PAGES, pages_holding(c, PAGES, 0));
}

/* Reclaim what our cgroup holds; how many pages of a and b are out. */
static int reclaim_swapped(char *a, char *b)
{
	/* It may give up early (EAGAIN) but still have done some. */
	write_str(CG "memory.reclaim", "64M");
	return swapped_pages(a, PAGES) + swapped_pages(b, PAGES);
}

/* How many pairs a[i], b[i] are out on one and the same swap entry. */
static int same_swap_entries(char *a, char *b)
{
	uint64_t ea[PAGES], eb[PAGES];
	int i, n = 0;

	if (pagemap_read(a, PAGES, ea) || pagemap_read(b, PAGES, eb))
		return -1;
	for (i = 0; i < PAGES; i++)
		n += (ea[i] & PM_SWAP) && ea[i] == eb[i];
	return n;
}

/*
 * Reclaim of a memory cgroup swaps out what MADV_PAGEOUT will not: KSM
 * pages that are shared.  Every mapping of such a page must go out with
 * it, and come back to the same data.
 */
TEST_F_TIMEOUT(swap, reclaim_shared_ksm_pages, 90)
{
	int ret, swapped = 0;
	char *a, *b;

	ret = memcg_enter(CG_NAME, &self->memory_was_on);
	if (ret == MEMCG_NO_V2 || ret == MEMCG_NO_CTRL)
		SKIP(return, "no memory cgroup controller");
	if (ret == MEMCG_NO_DIR)
		SKIP(return, "mkdir " CG ": %s", strerror(errno));
	/* Our pages are charged where we fault them: in the cgroup. */
	self->in_cgroup = true;
	ASSERT_EQ(0, ret);

	merge_pair(_metadata, &a, &b);
	WAIT_UNTIL((swapped = reclaim_swapped(a, b)) > 0, WAIT_S);
	ASSERT_GT(swapped, 0) TH_LOG("no page of %d went out to swap",
				     2 * PAGES);
	/* A shared page goes out once: its mappings share the swap entry. */
	EXPECT_EQ(swapped, 2 * same_swap_entries(a, b));

	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	EXPECT_EQ(0, swapped_pages(a, PAGES) + swapped_pages(b, PAGES));
	/*
	 * They may come back as copies of their own (6.12 copies a page read
	 * from swap for every mapping but the first), which smart_scan can
	 * keep apart for long: no check that they merge again, only that
	 * every copy is its owner's.
	 */
	write_even_pages(_metadata, a, b);
}

/* --- NUMA migration and compaction ------------------------------------ */

FIXTURE(migrate) {
	struct ksm_knobs knobs;
};

FIXTURE_SETUP(migrate)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	ASSERT_EQ(0, ksm_flat_out(&self->knobs));
}

FIXTURE_TEARDOWN(migrate)
{
	ksm_knobs_restore(&self->knobs);
}

/* The node of each page into @nodes (-errno if none); 0 or -1. */
static int page_nodes(char *p, int *nodes)
{
	void *pages[PAGES];
	int i;

	for (i = 0; i < PAGES; i++)
		pages[i] = p + i * page_size();
	return syscall(SYS_move_pages, 0, PAGES, pages, NULL, nodes, 0) ? -1 : 0;
}

/* How many pages of @p are on @node. */
static int pages_on(char *p, int node)
{
	int nodes[PAGES], i, n = 0;

	if (page_nodes(p, nodes))
		return -1;
	for (i = 0; i < PAGES; i++)
		n += nodes[i] == node;
	return n;
}

/* move_pages() the whole of @p to @node; how many got there. */
static int move_all(char *p, int node)
{
	int nodes[PAGES], status[PAGES], i;
	void *pages[PAGES];

	for (i = 0; i < PAGES; i++) {
		pages[i] = p + i * page_size();
		nodes[i] = node;
	}
	/* KSM pages are mapped more than once: MOVE_ALL moves them. */
	syscall(SYS_move_pages, 0, PAGES, pages, nodes, status,
		MPOL_MF_MOVE_ALL);
	return pages_on(p, node);
}

/* mbind() @p to @node, moving what is there already; how many got there. */
static int bind_all(char *p, int node)
{
	unsigned long mask = 1UL << node;

	syscall(SYS_mbind, p, PAGES * page_size(), MPOL_BIND, &mask,
		sizeof(mask) * 8, MPOL_MF_MOVE_ALL | MPOL_MF_STRICT);
	return pages_on(p, node);
}

TEST_F_TIMEOUT(migrate, numa_move_keeps_pages_merged, 90)
{
	int nodes[PAGES], from, to;
	char *a, *b;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "needs two NUMA nodes (numa=fake=2)");
	merge_pair(_metadata, &a, &b);
	ASSERT_EQ(0, page_nodes(a, nodes));
	ASSERT_GE(nodes[0], 0);
	from = nodes[0];
	to = from ? 0 : 1;

	/* ksmd keeps scanning: migration and merging race here. */
	ASSERT_TRUE(WAIT_UNTIL(move_all(a, to) == PAGES, WAIT_S))
		TH_LOG("%d of %d pages on node %d", pages_on(a, to), PAGES, to);
	/* b's pages are a's: they moved along and are still shared. */
	EXPECT_EQ(PAGES, pages_on(b, to));
	EXPECT_EQ(PAGES, same_frames(a, b, PAGES));
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	EXPECT_EQ(2 * PAGES, proc_merging_pages(getpid()));

	/* And back, by policy this time, through b. */
	ASSERT_TRUE(WAIT_UNTIL(bind_all(b, from) == PAGES, WAIT_S))
		TH_LOG("%d of %d pages on node %d", pages_on(b, from), PAGES,
		       from);
	EXPECT_EQ(PAGES, pages_on(a, from));
	EXPECT_EQ(PAGES, same_frames(a, b, PAGES));
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));

	write_even_pages(_metadata, a, b);
	EXPECT_EQ(PAGES / 2, same_frames(a, b, PAGES));
}

/* How many pages of @p are no longer on the frames of @before. */
static int frames_moved(char *p, const unsigned long long *before)
{
	int i, n = 0;

	for (i = 0; i < PAGES; i++)
		n += frame_of(p + i * page_size()) != before[i];
	return n;
}

TEST_F_TIMEOUT(migrate, compaction_keeps_pages_merged, 120)
{
	unsigned long long before[PAGES];
	int i, tries, moved = 0;
	char *a, *b;

	merge_pair(_metadata, &a, &b);
	for (i = 0; i < PAGES; i++)
		before[i] = frame_of(a + i * page_size());
	/*
	 * With ksmd scanning along.  Compaction moves only the pages below
	 * where its two scanners meet: give it a few runs to catch ours.
	 */
	for (tries = 0; tries < 5 && !moved; tries++) {
		ASSERT_EQ(0, write_str("/proc/sys/vm/compact_memory", "1"));
		moved = frames_moved(a, before);
		EXPECT_EQ(PAGES, same_frames(a, b, PAGES));
		EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
		EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	}
	/* Not an error if none moved: where our pages lie is up to chance. */
	TH_LOG("compaction moved %d of %d KSM pages", moved, PAGES);
	EXPECT_EQ(2 * PAGES, proc_merging_pages(getpid()));

	write_even_pages(_metadata, a, b);
	EXPECT_EQ(PAGES / 2, same_frames(a, b, PAGES));
	/* Half shared, half private: compact again, all as written. */
	ASSERT_EQ(0, write_str("/proc/sys/vm/compact_memory", "1"));
	EXPECT_EQ(PAGES / 2, same_frames(a, b, PAGES));
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_holds(a + i * page_size(), i % 2 ? i : 1000 + i))
			TH_LOG("a[%d]", i);
}

/* --- THP ---------------------------------------------------------------- */

FIXTURE(thp) {
	struct ksm_knobs knobs;
	char enabled[64];
};

FIXTURE_SETUP(thp)
{
	int fd, n;

	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	fd = open(THP "enabled", O_RDONLY);
	if (fd < 0)
		SKIP(return, "no THP (CONFIG_TRANSPARENT_HUGEPAGE)");
	n = read(fd, self->enabled, sizeof(self->enabled) - 1);
	close(fd);
	ASSERT_GT(n, 0);
	self->enabled[n] = '\0';
	/* MADV_HUGEPAGE asks for a THP in "always" and "madvise" alike. */
	if (strstr(self->enabled, "[never]"))
		ASSERT_EQ(0, write_str(THP "enabled", "madvise"));
	ASSERT_EQ(0, ksm_flat_out(&self->knobs));
}

FIXTURE_TEARDOWN(thp)
{
	if (strstr(self->enabled, "[never]"))
		write_str(THP "enabled", "never");
	ksm_knobs_restore(&self->knobs);
}

static int cmp_ull(const void *x, const void *y)
{
	unsigned long long a = *(const unsigned long long *)x;
	unsigned long long b = *(const unsigned long long *)y;

	return a < b ? -1 : a > b;
}

TEST_F_TIMEOUT(thp, subpages_of_a_thp_merge, 90)
{
	long hsize = read_long(THP "hpage_pmd_size");
	unsigned long long *frames;
	int i, n, distinct;
	char *raw, *p;

	ASSERT_GT(hsize, 0);
	n = hsize / page_size();
	/* One PMD-aligned huge page's worth, the rest unmapped. */
	raw = mmap(NULL, 2 * hsize, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	p = (char *)(((unsigned long)raw + hsize - 1) & ~(hsize - 1));
	if (p > raw)
		munmap(raw, p - raw);
	munmap(p + hsize, raw + hsize - p);
	ASSERT_EQ(0, madvise(p, hsize, MADV_HUGEPAGE));

	/* Every 4K page the same: the whole THP can merge. */
	for (i = 0; i < n; i++)
		fill_page(p + i * page_size(), 7);
	if (smaps_kb(p, "AnonHugePages") < hsize / 1024)
		SKIP(return, "no THP for the area (AnonHugePages %ld kB)",
		     smaps_kb(p, "AnonHugePages"));

	ASSERT_EQ(0, madvise(p, hsize, MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(proc_merging_pages(getpid()) >= n, WAIT_S))
		TH_LOG("%ld of %d subpages merged",
		       proc_merging_pages(getpid()), n);
	EXPECT_GT(ksm_get("pages_sharing"), 0);
	/* Merged 4K pages cannot stay under one PMD: the THP was split. */
	EXPECT_EQ(0, smaps_kb(p, "AnonHugePages"));
	for (i = 0; i < n; i++)
		EXPECT_TRUE(page_holds(p + i * page_size(), 7)) TH_LOG("[%d]", i);

	/* A handful of KSM frames (max_page_sharing) back all of it. */
	frames = calloc(n, sizeof(*frames));
	ASSERT_NE(NULL, frames);
	for (i = 0; i < n; i++)
		frames[i] = frame_of(p + i * page_size());
	qsort(frames, n, sizeof(*frames), cmp_ull);
	for (distinct = 0, i = 0; i < n; i++)
		distinct += frames[i] && (!i || frames[i] != frames[i - 1]);
	EXPECT_GE(distinct, 1);
	EXPECT_LE(distinct, n / 64);
	free(frames);

	/* One write, one page changed. */
	fill_page(p + 100 * page_size(), 8);
	for (i = 0; i < n; i++)
		EXPECT_TRUE(page_holds(p + i * page_size(), i == 100 ? 8 : 7))
			TH_LOG("[%d]", i);
}

TEST_HARNESS_MAIN
