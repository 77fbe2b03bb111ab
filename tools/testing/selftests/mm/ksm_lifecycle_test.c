// SPDX-License-Identifier: GPL-2.0
/*
 * Merged pages through the life of their process and of their mappings,
 * with ksmd scanning flat out: a process exits while merged or in the
 * middle of a scan, and munmap, mremap, mprotect and MADV_DONTNEED meet
 * merged ranges.  Contents are checked byte for byte after each step, and
 * KSM must let go of what is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#define PAGES 128
#define WAIT_S 30

/* exit_during_scans: rounds of children that exit at random moments. */
#define ROUNDS 6
#define CHILDREN 4
#define CHILD_PAGES 512
#define WITNESS_PAGES 64

FIXTURE(ksm) {
	struct ksm_knobs knobs;
	char *a, *b;
};

FIXTURE_SETUP(ksm)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	/* Start from nothing merged: global counters must mean us. */
	ASSERT_EQ(0, ksm_flat_out(&self->knobs));
}

FIXTURE_TEARDOWN(ksm)
{
	ksm_knobs_restore(&self->knobs);
}

/* Two mergeable regions, page i of each holding seed i: 0 or -1. */
static int map_pair(char **a, char **b)
{
	int i;

	*a = map_anon(PAGES);
	*b = map_anon(PAGES);
	if (!*a || !*b)
		return -1;
	for (i = 0; i < PAGES; i++) {
		fill_page(*a + i * page_size(), i);
		fill_page(*b + i * page_size(), i);
	}
	if (madvise(*a, PAGES * page_size(), MADV_MERGEABLE) ||
	    madvise(*b, PAGES * page_size(), MADV_MERGEABLE))
		return -1;
	return 0;
}

/* The pair merged page for page: each a[i] on the frame of b[i]. */
static void merge_pair(struct __test_metadata *_metadata, char **a, char **b)
{
	ASSERT_EQ(0, map_pair(a, b));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(*a, *b, PAGES) == PAGES, WAIT_S))
		TH_LOG("%d of %d pairs merged", same_frames(*a, *b, PAGES),
		       PAGES);
}

static bool ksm_counters_zero(void)
{
	return !ksm_get("pages_shared") && !ksm_get("pages_sharing");
}

TEST_F_TIMEOUT(ksm, exit_while_merged, 90)
{
	int ready[2], go[2], status;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* No ASSERT here: the child reports by its exit status. */
		close(go[1]);
		if (map_pair(&self->a, &self->b) || write(ready[1], "r", 1) != 1)
			_exit(2);
		/* Exit when told to, or when the test is gone. */
		_exit(read(go[0], &c, 1) < 0);
	}
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_TRUE(WAIT_UNTIL(proc_merging_pages(pid) >= 2 * PAGES, WAIT_S))
		TH_LOG("child: %ld merged", proc_merging_pages(pid));
	EXPECT_GT(ksm_get("pages_sharing"), 0);
	EXPECT_GT(ksm_get("pages_shared"), 0);

	close(go[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	/* ksmd has to notice the exit to drop the rmap items; it runs. */
	EXPECT_TRUE(WAIT_UNTIL(ksm_counters_zero(), WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
}

TEST_F_TIMEOUT(ksm, exit_leaves_partner_intact, 90)
{
	int i, ready[2], go[2], status;
	char c, *mine;
	pid_t pid;

	/* Both processes map the same pages; they merge across the two. */
	mine = map_anon(PAGES);
	ASSERT_NE(NULL, mine);
	for (i = 0; i < PAGES; i++)
		fill_page(mine + i * page_size(), i);
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		close(go[1]);
		/* Private copies of our own, equal to the parent's. */
		for (i = 0; i < PAGES; i++)
			fill_page(mine + i * page_size(), i);
		if (madvise(mine, PAGES * page_size(), MADV_MERGEABLE) ||
		    write(ready[1], "r", 1) != 1)
			_exit(2);
		_exit(read(go[0], &c, 1) < 0);
	}
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, madvise(mine, PAGES * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(proc_merging_pages(pid) >= PAGES &&
			       proc_merging_pages(getpid()) >= PAGES, WAIT_S))
		TH_LOG("child %ld, parent %ld merged", proc_merging_pages(pid),
		       proc_merging_pages(getpid()));

	close(go[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	/* Nothing is shared with anyone any more: no page saved. */
	EXPECT_TRUE(WAIT_UNTIL(!ksm_get("pages_sharing"), WAIT_S))
		TH_LOG("pages_sharing %ld", ksm_get("pages_sharing"));
	EXPECT_EQ(PAGES, pages_holding(mine, PAGES, 0));
	/* The survivor's pages are its own to write. */
	for (i = 0; i < PAGES; i += 2)
		fill_page(mine + i * page_size(), 1000 + i);
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_holds(mine + i * page_size(),
				       i % 2 ? i : 1000 + i)) TH_LOG("page %d", i);
}

/*
 * A child with many equal pages: it exits @delay_us after registering
 * them, or after they merged if @wait_merge.
 */
static void churn_child(unsigned int delay_us, bool wait_merge)
{
	char *p = map_anon(CHILD_PAGES);
	int i;

	if (!p)
		_exit(1);
	/* Equal within the child and across children: they all merge. */
	for (i = 0; i < CHILD_PAGES; i++)
		fill_page(p + i * page_size(), i % 64);
	if (madvise(p, CHILD_PAGES * page_size(), MADV_MERGEABLE))
		_exit(1);
	/* One child a round is sure to exit with its pages merged. */
	if (wait_merge && !WAIT_UNTIL(proc_merging_pages(getpid()) > 0, WAIT_S))
		_exit(3);
	usleep(delay_us);
	_exit(0);
}

TEST_F_TIMEOUT(ksm, exit_during_scans, 150)
{
	unsigned int seed = getpid();
	pid_t pids[CHILDREN];
	long scans0;
	char *w;
	int r, i, status;

	/* Several batches per full scan, so that exits land inside one. */
	ASSERT_EQ(0, ksm_set("pages_to_scan", 256));

	/*
	 * A witness keeps ksmd busy and counting passes once the children
	 * are gone: unique pages, never merged, not inherited by a child.
	 */
	w = map_anon(WITNESS_PAGES);
	ASSERT_NE(NULL, w);
	for (i = 0; i < WITNESS_PAGES; i++)
		fill_page(w + i * page_size(), 100000 + i);
	ASSERT_EQ(0, madvise(w, WITNESS_PAGES * page_size(), MADV_DONTFORK));
	ASSERT_EQ(0, madvise(w, WITNESS_PAGES * page_size(), MADV_MERGEABLE));
	scans0 = ksm_get("full_scans");

	srand(seed);
	for (r = 0; r < ROUNDS; r++) {
		for (i = 0; i < CHILDREN; i++) {
			unsigned int delay = rand() % 400000;

			pids[i] = fork();
			ASSERT_GE(pids[i], 0);
			if (!pids[i])
				churn_child(delay, i == 0);
		}
		for (i = 0; i < CHILDREN; i++) {
			ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
			EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
				TH_LOG("round %d child %d: status %#x (seed %u)",
				       r, i, status, seed);
		}
	}
	EXPECT_GT(ksm_get("full_scans"), scans0)
		TH_LOG("no full scan during %d rounds", ROUNDS);

	/* Every exit is noticed, and ksmd keeps going for the survivor. */
	EXPECT_TRUE(WAIT_UNTIL(ksm_counters_zero(), WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld (seed %u)",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"), seed);
	EXPECT_TRUE(wait_scans(2, WAIT_S))
		TH_LOG("ksmd stalled at %ld full scans", ksm_get("full_scans"));
	EXPECT_EQ(WITNESS_PAGES, proc_ksm_stat(getpid(), "ksm_rmap_items"));
	EXPECT_EQ(0, proc_merging_pages(getpid()));
	EXPECT_EQ(WITNESS_PAGES, pages_holding(w, WITNESS_PAGES, 100000));
}

TEST_F_TIMEOUT(ksm, munmap_part_of_merged_range, 90)
{
	const int half = PAGES / 2;
	char *a, *b;
	int i;

	merge_pair(_metadata, &self->a, &self->b);
	a = self->a;
	b = self->b;
	ASSERT_EQ(0, munmap(b, half * page_size()));

	/* The pages left are as merged and as full as before. */
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(half, pages_holding(b + half * page_size(), half, half));
	EXPECT_EQ(half, same_frames(a + half * page_size(),
				    b + half * page_size(), half));
	/* ksmd forgets the unmapped half. */
	EXPECT_TRUE(WAIT_UNTIL(proc_merging_pages(getpid()) <= PAGES + half,
			       WAIT_S))
		TH_LOG("%ld merged", proc_merging_pages(getpid()));

	/* Writes to either half of a change a alone. */
	for (i = 0; i < PAGES; i += 2)
		fill_page(a + i * page_size(), 1000 + i);
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_holds(a + i * page_size(), i % 2 ? i : 1000 + i))
			TH_LOG("a[%d]", i);
	EXPECT_EQ(half, pages_holding(b + half * page_size(), half, half));
	EXPECT_EQ(half / 2, same_frames(a + half * page_size(),
					b + half * page_size(), half));
}

TEST_F_TIMEOUT(ksm, mremap_merged_range, 90)
{
	size_t len = PAGES * page_size();
	char *a, *b, *to;
	int i;

	merge_pair(_metadata, &self->a, &self->b);
	a = self->a;
	/* Somewhere else to go: a hole of our own. */
	to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, to);
	b = mremap(self->b, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	ASSERT_EQ(to, b);
	self->b = b;

	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	/* Moved pages may be unmerged on the way; they must merge again. */
	EXPECT_TRUE(WAIT_UNTIL(same_frames(a, b, PAGES) == PAGES, WAIT_S))
		TH_LOG("%d of %d pairs merged", same_frames(a, b, PAGES), PAGES);

	for (i = 1; i < PAGES; i += 2)
		fill_page(b + i * page_size(), 1000 + i);
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_holds(b + i * page_size(), i % 2 ? 1000 + i : i))
			TH_LOG("b[%d]", i);
}

TEST_F_TIMEOUT(ksm, mprotect_merged_range, 90)
{
	const int quarter = PAGES / 4;
	char *a, *b;
	int i;

	merge_pair(_metadata, &self->a, &self->b);
	a = self->a;
	b = self->b;
	/* Read-only in the middle: a's VMA splits in three. */
	ASSERT_EQ(0, mprotect(a + quarter * page_size(),
			      2 * quarter * page_size(), PROT_READ));
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, same_frames(a, b, PAGES));
	/* A couple of passes over the read-only pages change nothing. */
	EXPECT_TRUE(wait_scans(2, WAIT_S));
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, same_frames(a, b, PAGES));

	ASSERT_EQ(0, mprotect(a, PAGES * page_size(), PROT_READ | PROT_WRITE));
	EXPECT_EQ(PAGES, same_frames(a, b, PAGES));
	for (i = 0; i < PAGES; i += 2)
		fill_page(a + i * page_size(), 1000 + i);
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_holds(a + i * page_size(), i % 2 ? i : 1000 + i))
			TH_LOG("a[%d]", i);
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
	/* Each write took a private copy; the odd pages stay shared. */
	EXPECT_EQ(PAGES / 2, same_frames(a, b, PAGES));
}

TEST_F_TIMEOUT(ksm, dontneed_merged_range, 90)
{
	char *a, *b;
	int i;

	merge_pair(_metadata, &self->a, &self->b);
	a = self->a;
	b = self->b;
	ASSERT_EQ(0, madvise(b, PAGES * page_size(), MADV_DONTNEED));

	/* b reads back as zeroes, a is untouched. */
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(page_zero(b + i * page_size())) TH_LOG("b[%d]", i);
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(0, same_frames(a, b, PAGES));
	/* KSM lets go of b's pages: a saves nothing alone. */
	EXPECT_TRUE(WAIT_UNTIL(proc_merging_pages(getpid()) <= PAGES &&
			       !ksm_get("pages_sharing"), WAIT_S))
		TH_LOG("%ld merged, pages_sharing %ld",
		       proc_merging_pages(getpid()), ksm_get("pages_sharing"));

	/* The range is still mergeable: the same data merges again. */
	for (i = 0; i < PAGES; i++)
		fill_page(b + i * page_size(), i);
	EXPECT_TRUE(WAIT_UNTIL(same_frames(a, b, PAGES) == PAGES, WAIT_S))
		TH_LOG("%d of %d pairs merged", same_frames(a, b, PAGES), PAGES);
	EXPECT_EQ(PAGES, pages_holding(a, PAGES, 0));
	EXPECT_EQ(PAGES, pages_holding(b, PAGES, 0));
}

TEST_HARNESS_MAIN
