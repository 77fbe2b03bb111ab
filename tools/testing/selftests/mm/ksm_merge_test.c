// SPDX-License-Identifier: GPL-2.0
/*
 * Merging as its users see it: equal pages merge, a write to a merged page
 * changes only the writer's copy, MADV_UNMERGEABLE gives back private pages
 * with the data intact, and pages shared across a fork diverge cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_test_util.h"

#define PAGES 32
#define WAIT_S 20

static long psize;

static long merging_pages(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", pid);
	return read_long(path);
}

/* Wait until @pid has at least @want merged pages; false after WAIT_S. */
static bool wait_merged(pid_t pid, long want)
{
	double end = now() + WAIT_S;

	while (merging_pages(pid) < want) {
		if (now() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* The page frame behind a virtual page (root reads real PFNs), or 0. */
static unsigned long long pfn_of(void *addr)
{
	unsigned long long entry;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t off = (unsigned long)addr / psize * sizeof(entry);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry), off) != sizeof(entry))
		entry = 0;
	close(fd);
	if (!(entry >> 63))	/* not present */
		return 0;
	return entry & ((1ULL << 55) - 1);
}

/* How many page pairs a[i], b[i] map one and the same frame. */
static int shared_frames(char *a, char *b)
{
	int i, n = 0;

	for (i = 0; i < PAGES; i++) {
		unsigned long long pa = pfn_of(a + i * psize);

		n += pa && pa == pfn_of(b + i * psize);
	}
	return n;
}

/* Page @i of a region: every byte says which page and which generation. */
static void fill(char *p, int i, char gen)
{
	memset(p + i * psize, gen + i, psize);
}

static bool holds(char *p, int i, char gen)
{
	char *page = p + i * psize;
	long b;

	for (b = 0; b < psize; b++)
		if (page[b] != (char)(gen + i))
			return false;
	return true;
}

static char *region(void)
{
	char *p = mmap(NULL, PAGES * psize, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Small pages: this is about merging, not about splitting THPs. */
	madvise(p, PAGES * psize, MADV_NOHUGEPAGE);
	return p;
}

FIXTURE(merge) {
	long saved_run, saved_pages, saved_sleep, saved_zero;
	char *a, *b;
};

FIXTURE_SETUP(merge)
{
	int i;

	if (access(KSM_DIR "run", F_OK))
		SKIP(return, "no KSM in this kernel");
	if (geteuid())
		SKIP(return, "needs root");
	psize = sysconf(_SC_PAGESIZE);
	self->saved_run = read_long(KSM_DIR "run");
	self->saved_pages = read_long(KSM_DIR "pages_to_scan");
	self->saved_sleep = read_long(KSM_DIR "sleep_millisecs");
	self->saved_zero = read_long(KSM_DIR "use_zero_pages");
	ASSERT_EQ(0, ksm_set("pages_to_scan", 1000));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 0));
	ASSERT_EQ(0, ksm_set("use_zero_pages", 0));

	/* Two regions, page for page equal, no two pages within one equal. */
	self->a = region();
	self->b = region();
	ASSERT_NE(NULL, self->a);
	ASSERT_NE(NULL, self->b);
	for (i = 0; i < PAGES; i++) {
		fill(self->a, i, 1);
		fill(self->b, i, 1);
	}
}

FIXTURE_TEARDOWN(merge)
{
	ksm_set("run", self->saved_run);
	ksm_set("pages_to_scan", self->saved_pages);
	ksm_set("sleep_millisecs", self->saved_sleep);
	ksm_set("use_zero_pages", self->saved_zero);
}

static void merge_regions(struct __test_metadata *_metadata, char *a, char *b)
{
	ASSERT_EQ(0, madvise(a, PAGES * psize, MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(b, PAGES * psize, MADV_MERGEABLE));
	ASSERT_EQ(0, ksm_set("run", 1));
	/* Each of the PAGES contents ends up with two mappings. */
	ASSERT_TRUE(wait_merged(getpid(), 2 * PAGES))
		TH_LOG("%ld of %d pages merged", merging_pages(getpid()),
		       2 * PAGES);
	ASSERT_EQ(PAGES, shared_frames(a, b));
}

TEST_F(merge, writes_change_only_the_writer)
{
	int i;

	merge_regions(_metadata, self->a, self->b);
	/* Stop ksmd, so that nothing merges again behind the checks. */
	ASSERT_EQ(0, ksm_set("run", 0));
	for (i = 0; i < PAGES; i += 2)
		fill(self->a, i, 7);	/* even pages of a */
	for (i = 1; i < PAGES; i += 2)
		fill(self->b, i, 9);	/* odd pages of b */
	for (i = 0; i < PAGES; i++) {
		EXPECT_TRUE(holds(self->a, i, i % 2 ? 1 : 7)) TH_LOG("a[%d]", i);
		EXPECT_TRUE(holds(self->b, i, i % 2 ? 9 : 1)) TH_LOG("b[%d]", i);
	}
	/* Every pair had one write: the writer got a copy of its own. */
	EXPECT_EQ(0, shared_frames(self->a, self->b));
}

TEST_F(merge, unmerge_gives_back_private_pages)
{
	int i;

	merge_regions(_metadata, self->a, self->b);
	ASSERT_EQ(0, madvise(self->a, PAGES * psize, MADV_UNMERGEABLE));
	ASSERT_EQ(0, madvise(self->b, PAGES * psize, MADV_UNMERGEABLE));
	/* MADV_UNMERGEABLE breaks the sharing before it returns. */
	EXPECT_EQ(0, shared_frames(self->a, self->b));
	for (i = 0; i < PAGES; i++) {
		EXPECT_TRUE(holds(self->a, i, 1)) TH_LOG("a[%d]", i);
		EXPECT_TRUE(holds(self->b, i, 1)) TH_LOG("b[%d]", i);
	}
}

TEST_F(merge, run_2_unmerges_everything)
{
	merge_regions(_metadata, self->a, self->b);
	ASSERT_EQ(0, ksm_set("run", 2));
	EXPECT_EQ(0, shared_frames(self->a, self->b));
	EXPECT_EQ(0, merging_pages(getpid()));
	EXPECT_EQ(0, read_long(KSM_DIR "pages_shared"));
	EXPECT_EQ(0, read_long(KSM_DIR "pages_sharing"));
	EXPECT_TRUE(holds(self->a, PAGES - 1, 1));
	EXPECT_TRUE(holds(self->b, 0, 1));
}

TEST_F(merge, fork_then_diverge)
{
	int i, ready[2], go[2], status;
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, madvise(self->a, PAGES * psize, MADV_MERGEABLE));
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* Private copies of a's pages, equal to the parent's again. */
		for (i = 0; i < PAGES; i++) {
			fill(self->a, i, 3);
			fill(self->a, i, 1);
		}
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		/* The parent diverged: we must still see our own data. */
		for (i = 0; i < PAGES; i++)
			if (!holds(self->a, i, 1))
				_exit(1);
		_exit(0);
	}
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, ksm_set("run", 1));
	/* KSM merges across the two processes: each maps PAGES KSM pages. */
	EXPECT_TRUE(wait_merged(pid, PAGES))
		TH_LOG("child: %ld merged", merging_pages(pid));
	EXPECT_TRUE(wait_merged(getpid(), PAGES))
		TH_LOG("parent: %ld merged", merging_pages(getpid()));
	ASSERT_EQ(0, ksm_set("run", 0));
	for (i = 0; i < PAGES; i++)
		fill(self->a, i, 5);
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(holds(self->a, i, 5)) TH_LOG("a[%d]", i);
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child saw changed data (status %d)", status);
}

TEST_HARNESS_MAIN
