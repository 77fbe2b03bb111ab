// SPDX-License-Identifier: GPL-2.0
/*
 * Which memory KSM takes on, as userspace sees it: madvise() and prctl()
 * set the "mg" flag of exactly the VMAs 6.12 accepts, ksmd tracks the
 * pages of a mergeable range and forgets them after MADV_UNMERGEABLE, and
 * ksmd goes idle once every registered process has exited.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define PAGES 64

/* Wait for @n more full scans; false after @limit seconds. */
static bool wait_full_scans(long n, double limit)
{
	long want = ksm_get("full_scans") + n;
	double end = now() + limit;

	while (ksm_get("full_scans") < want) {
		if (now() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* Does the VMA holding @addr carry the VmFlags bit @flag in smaps? */
static int vma_has_flag(void *addr, const char *flag)
{
	unsigned long a = (unsigned long)addr, start, end;
	char line[512], want[8];
	bool inside = false;
	int found = -1;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	snprintf(want, sizeof(want), " %s", flag);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = start <= a && a < end;
			continue;
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			found = !!strstr(line, want);
			break;
		}
	}
	fclose(f);
	return found;
}

static long rmap_items(void)
{
	return proc_ksm_stat(getpid(), "ksm_rmap_items");
}

/* Wait until this process tracks @want pages; false after @limit seconds. */
static bool wait_rmap_items(long want, double limit)
{
	double end = now() + limit;

	while (rmap_items() != want) {
		if (now() > end)
			return false;
		usleep(1000);
	}
	return true;
}

static char *map_filled(int flags)
{
	long psize = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, PAGES * psize, PROT_READ | PROT_WRITE,
		       flags, -1, 0);
	int i;

	if (p == MAP_FAILED)
		return NULL;
	for (i = 0; i < PAGES; i++)
		memset(p + i * psize, i + 1, psize);
	return p;
}

FIXTURE(ksm) {
	long saved_run, saved_pages, saved_sleep;
	size_t len;
};

FIXTURE_SETUP(ksm)
{
	if (access(KSM_DIR "run", F_OK))
		SKIP(return, "no KSM in this kernel");
	if (geteuid())
		SKIP(return, "needs root");
	self->len = PAGES * sysconf(_SC_PAGESIZE);
	self->saved_run = ksm_get("run");
	self->saved_pages = ksm_get("pages_to_scan");
	self->saved_sleep = ksm_get("sleep_millisecs");
	ASSERT_EQ(0, ksm_set("pages_to_scan", 1000));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 0));
}

FIXTURE_TEARDOWN(ksm)
{
	prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
	ksm_set("run", self->saved_run);
	ksm_set("pages_to_scan", self->saved_pages);
	ksm_set("sleep_millisecs", self->saved_sleep);
}

TEST_F(ksm, madvise_marks_private_anon_only)
{
	char *priv = map_filled(MAP_PRIVATE | MAP_ANONYMOUS);
	char *shared = map_filled(MAP_SHARED | MAP_ANONYMOUS);

	ASSERT_NE(NULL, priv);
	ASSERT_NE(NULL, shared);
	EXPECT_EQ(0, vma_has_flag(priv, "mg"));
	ASSERT_EQ(0, madvise(priv, self->len, MADV_MERGEABLE));
	EXPECT_EQ(1, vma_has_flag(priv, "mg"));
	/* Advice on shared memory is accepted and ignored. */
	EXPECT_EQ(0, madvise(shared, self->len, MADV_MERGEABLE));
	EXPECT_EQ(0, vma_has_flag(shared, "mg"));
	ASSERT_EQ(0, madvise(priv, self->len, MADV_UNMERGEABLE));
	EXPECT_EQ(0, vma_has_flag(priv, "mg"));
	/* Bad advice ranges fail as madvise() always did. */
	EXPECT_EQ(-1, madvise(priv + 1, self->len, MADV_MERGEABLE));
	EXPECT_EQ(EINVAL, errno);
	munmap(priv, self->len);
	munmap(shared, self->len);
}

TEST_F(ksm, prctl_marks_current_and_future_vmas)
{
	char *before = map_filled(MAP_PRIVATE | MAP_ANONYMOUS), *after;

	ASSERT_NE(NULL, before);
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		SKIP(return, "PR_SET_MEMORY_MERGE: %s", strerror(errno));
	EXPECT_EQ(1, prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
	after = map_filled(MAP_PRIVATE | MAP_ANONYMOUS);
	ASSERT_NE(NULL, after);
	EXPECT_EQ(1, vma_has_flag(before, "mg"));
	EXPECT_EQ(1, vma_has_flag(after, "mg"));
	ASSERT_EQ(0, prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0));
	EXPECT_EQ(0, prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
	EXPECT_EQ(0, vma_has_flag(before, "mg"));
	EXPECT_EQ(0, vma_has_flag(after, "mg"));
	munmap(before, self->len);
	munmap(after, self->len);
}

TEST_F(ksm, scan_tracks_then_forgets_a_range)
{
	char *p = map_filled(MAP_PRIVATE | MAP_ANONYMOUS);

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, madvise(p, self->len, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, madvise(p, self->len, MADV_MERGEABLE));
	ASSERT_EQ(0, ksm_set("run", 1));
	ASSERT_TRUE(wait_full_scans(3, 10));
	/* Every page of the range is tracked, whether it merged or not. */
	EXPECT_EQ(PAGES, rmap_items());

	/*
	 * Once nothing mergeable is left 6.12 may drop the mm and stop
	 * counting passes: wait for the tracking itself to go.
	 */
	ASSERT_EQ(0, madvise(p, self->len, MADV_UNMERGEABLE));
	EXPECT_TRUE(wait_rmap_items(0, 10)) TH_LOG("%ld left", rmap_items());
	munmap(p, self->len);
}

TEST_F(ksm, ksmd_idles_after_registered_processes_exit)
{
	long before, after;
	pid_t pid;
	int status;

	ASSERT_EQ(0, ksm_set("run", 1));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char *p = map_filled(MAP_PRIVATE | MAP_ANONYMOUS);

		if (!p || madvise(p, PAGES * sysconf(_SC_PAGESIZE), MADV_MERGEABLE))
			_exit(1);
		/* Exit while ksmd is busy with us. */
		wait_full_scans(2, 10);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));

	/*
	 * With sleep_millisecs 0 and no registered mm left, ksmd must stop
	 * counting passes.  Give the exit a second to settle.
	 */
	usleep(1000 * 1000);
	before = ksm_get("full_scans");
	usleep(500 * 1000);
	after = ksm_get("full_scans");
	EXPECT_LT(after - before, 10) TH_LOG("%ld passes in 0.5 s", after - before);
}

TEST_HARNESS_MAIN
