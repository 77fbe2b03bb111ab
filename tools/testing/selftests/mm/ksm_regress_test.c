// SPDX-License-Identifier: GPL-2.0
/*
 * Regression tests for review findings, each asserting what 6.12's KSM
 * does: a lazily freed twin must not take its partner's data along under
 * reclaim, an exit frees its mm with ksmd stopped, unmerging wins against
 * migration and memory offlining, a KSM page split by node follows its
 * migration, forked sharers go past max_page_sharing, run=2 leaves nothing
 * counted, a failed merge leaves no lone KSM page, pages_unshared and
 * full_scans count what they say, and the layout knobs refuse to change
 * under KSM pages.  Scan costs are measured against generous bounds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mempolicy.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define WAIT_S 60
#define CG_NAME "ksm_regress"
#define CG CGROOT CG_NAME "/"
#define NODE1 "/sys/devices/system/node/node1"

/* --- helpers ------------------------------------------------------------ */

/*
 * Fields a test shares with its thread: whole loads and stores, never
 * left out or moved past one another.  Any type: bool, long, double.
 */
#define LOAD(x) ({							\
	typeof(x) __lv;							\
									\
	__atomic_load(&(x), &__lv, __ATOMIC_SEQ_CST);			\
	__lv;								\
})
#define STORE(x, v) do {						\
	typeof(x) __sv = (v);						\
									\
	__atomic_store(&(x), &__sv, __ATOMIC_SEQ_CST);			\
} while (0)

/*
 * How many of @pages pages from @p were on KSM pages, found by writing
 * each (the byte it holds back): a write always copies a KSM page, while
 * an exclusive anonymous page is written where it is.  For processes that
 * share no anonymous page through fork.  (6.12's /proc/kpageflags sets
 * KPF_KSM on every anonymous page: it cannot tell.)  -1 on error.
 */
static int ksm_pages_written(char *p, int pages)
{
	uint64_t *before = calloc(pages, sizeof(*before));
	uint64_t *after = calloc(pages, sizeof(*after));
	int i, n = -1;

	if (before && after && !pagemap_read(p, pages, before)) {
		for (i = 0; i < pages; i++) {
			char *c = p + i * page_size();

			/* The byte it holds, written back: not left out. */
			__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
		}
		if (!pagemap_read(p, pages, after))
			for (n = 0, i = 0; i < pages; i++)
				n += (before[i] & PM_PRESENT) &&
				     (before[i] & PM_PFN_MASK) !=
				     (after[i] & PM_PFN_MASK);
	}
	free(before);
	free(after);
	return n;
}

/* How many pairs of neighbours (pages 2i, 2i + 1) from @p share a frame. */
static int pairs_merged(char *p, int pages)
{
	uint64_t *e = calloc(pages, sizeof(*e));
	int i, n = 0;

	if (e && !pagemap_read(p, pages, e))
		for (i = 0; i + 1 < pages; i += 2)
			n += (e[i] & PM_PRESENT) &&
			     (e[i] & PM_PFN_MASK) == (e[i + 1] & PM_PFN_MASK);
	free(e);
	return n;
}

/* How many times the frame behind @addr is mapped (/proc/kpagecount). */
static long map_count(void *addr)
{
	unsigned long long pfn = frame_of(addr);
	uint64_t count;
	int fd;

	if (!pfn)
		return -1;
	fd = open("/proc/kpagecount", O_RDONLY);
	if (fd < 0)
		return -1;
	if (pread(fd, &count, sizeof(count), pfn * sizeof(count)) != sizeof(count))
		count = -1;
	close(fd);
	return count;
}

/* A "Key:  N kB" line of /proc/meminfo, in kB; -1 if none. */
static long meminfo_kb(const char *key)
{
	size_t klen = strlen(key);
	char line[128];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			kb = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static pid_t ksmd_pid(void)
{
	char path[300], comm[32];
	struct dirent *de;
	pid_t pid = -1;
	DIR *d;
	int fd, n;

	d = opendir("/proc");
	if (!d)
		return -1;
	while (pid < 0 && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n > 0 && !strncmp(comm, "ksmd\n", 5))
			pid = atoi(de->d_name);
	}
	closedir(d);
	return pid;
}

/*
 * CPU seconds a task ran: se.sum_exec_runtime (CONFIG_SCHED_DEBUG) is
 * exact, utime + stime from stat counts ticks.  -1 if neither is there.
 */
static double task_cpu(pid_t pid)
{
	unsigned long ut, st;
	char path[64], line[256], *p;
	double ms = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/sched", pid);
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "se.sum_exec_runtime : %lf", &ms) == 1)
				break;
		fclose(f);
		if (ms >= 0)
			return ms / 1000;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
	fclose(f);
	/* After "comm)": state and 10 more fields, then utime and stime. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

/* Page i of @p gets seed @seed + i / @group: groups of equal pages. */
static void fill_groups(char *p, int pages, int group, unsigned int seed)
{
	int i;

	for (i = 0; i < pages; i++)
		fill_page(p + i * page_size(), seed + i / group);
}

static int groups_holding(char *p, int pages, int group, unsigned int seed)
{
	int i, n = 0;

	for (i = 0; i < pages; i++)
		n += page_holds(p + i * page_size(), seed + i / group);
	return n;
}

/* The NUMA node of the page at @p, or -errno. */
static int node_of(void *p)
{
	int node = -1;

	if (syscall(SYS_move_pages, 0, 1, &p, NULL, &node, 0))
		return -errno;
	return node;
}

/* Move the page at @p (and every mapping of it) to @node; its node after. */
static int move_to(void *p, int node)
{
	int status;

	syscall(SYS_move_pages, 0, 1, &p, &node, &status, MPOL_MF_MOVE_ALL);
	return node_of(p);
}

/* Fresh pages that will be allocated on @node only. */
static char *map_on_node(int pages, int node)
{
	unsigned long mask = 1UL << node;
	char *p = map_anon(pages);

	if (p && syscall(SYS_mbind, p, pages * page_size(), MPOL_BIND, &mask,
			 sizeof(mask) * 8, 0)) {
		munmap(p, pages * page_size());
		return NULL;
	}
	return p;
}

/* Write @value to a file of /sys/kernel/mm/ksm: 0 or -errno. */
static int ksm_write(const char *name, long value)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	snprintf(buf, sizeof(buf), "%ld", value);
	return write_str(path, buf);
}

/*
 * A child that maps @pages pages (page i holding seed @seed + i / @group,
 * or two equal halves if @group is 0), registers them and waits for its
 * pipe to close; an 'h' on the pipe unmaps the second half.  Returns its
 * pid with the pipe's write end in *@go.
 */
static pid_t spawn_holder(int pages, int group, unsigned int seed, int *go)
{
	int ready[2], gopipe[2], half = pages / 2, n;
	pid_t pid;
	char c;

	if (pipe(ready) || pipe(gopipe))
		return -1;
	pid = fork();
	if (!pid) {
		char *p = map_anon(pages);

		close(gopipe[1]);
		close(ready[0]);
		if (!p)
			_exit(1);
		if (group) {
			fill_groups(p, pages, group, seed);
		} else {
			fill_groups(p, half, 1, seed);
			fill_groups(p + half * page_size(), half, 1, seed);
		}
		if (madvise(p, pages * page_size(), MADV_MERGEABLE) ||
		    write(ready[1], "r", 1) != 1)
			_exit(2);
		/* Till told to go, or till the test is gone. */
		while ((n = read(gopipe[0], &c, 1)) == 1)
			if (c == 'h' && munmap(p + half * page_size(),
					       (pages - half) * page_size()))
				_exit(3);
		_exit(n < 0);
	}
	close(ready[1]);
	close(gopipe[0]);
	if (pid < 0 || read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		close(gopipe[1]);
		return -1;
	}
	close(ready[0]);
	*go = gopipe[1];
	return pid;
}

/* Tell a holder to exit and reap it: its exit status, or -1. */
static int release_holder(pid_t pid, int go)
{
	int status;

	close(go);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* --- the fixture: flat out, every knob we turn restored ---------------- */

FIXTURE(regress) {
	struct ksm_knobs knobs;
	long max_page_sharing, merge_across_nodes, smart_scan;
	bool in_cgroup, memory_was_on;
	long movable_block;	/* a memory block we onlined movable */
	bool block_moved;
};

static int block_state(long block, const char *what, int limit);

FIXTURE_SETUP(regress)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	self->max_page_sharing = ksm_get("max_page_sharing");
	self->merge_across_nodes = ksm_get("merge_across_nodes");
	self->smart_scan = ksm_get("smart_scan");
	/* Start from nothing merged: global counters must mean us. */
	ASSERT_EQ(0, ksm_flat_out(&self->knobs));
}

FIXTURE_TEARDOWN(regress)
{
	if (self->in_cgroup)
		memcg_leave(CG_NAME, self->memory_was_on);
	/* The layout knobs change only with no KSM page left. */
	ksm_set("run", 2);
	if (self->block_moved) {
		/* Back to the kernel zone it was in. */
		block_state(self->movable_block, "offline", 20);
		if (block_state(self->movable_block, "online_kernel", 20))
			block_state(self->movable_block, "online", 20);
	}
	ksm_set("max_page_sharing", self->max_page_sharing);
	if (self->merge_across_nodes >= 0)
		ksm_set("merge_across_nodes", self->merge_across_nodes);
	if (self->smart_scan >= 0)
		ksm_set("smart_scan", self->smart_scan);
	ksm_knobs_restore(&self->knobs);
}

/*
 * Into a memory cgroup of our own, noted in @in_cgroup, and whether the
 * memory controller was on already in @memory_was_on: NULL, or why not.
 */
static const char *cgroup_enter(bool *in_cgroup, bool *memory_was_on)
{
	int ret = memcg_enter(CG_NAME, memory_was_on);

	/* Made, moved into or not: teardown leaves it. */
	if (!ret || ret == MEMCG_NO_MOVE)
		*in_cgroup = true;
	switch (ret) {
	case MEMCG_NO_V2:
		return "no cgroup v2 at " CGROOT;
	case MEMCG_NO_CTRL:
		return "no memory cgroup controller";
	case MEMCG_NO_DIR:
		return "cannot make " CG;
	case MEMCG_NO_MOVE:
		return "cannot move into " CG;
	}
	return NULL;
}

/* --- 1. MADV_FREE: a lazily freed page merged with a twin ---------------- */

#define FREE_PAIRS 512
#define LAZY_PAGES 64

/* The log line of the test below, in one piece to grep for. */
#define FREE_LOG "%d of %d pairs lost the data of the page not freed; reclaim dropped %d of %d witnesses"

/*
 * Pairs of equal pages, one of each lazily freed (MADV_FREE, not written
 * again), merged; then memcg reclaim, with no swap.  A lazily freed page
 * may be dropped, but the KSM page it merged into holds its twin's data
 * too: 6.12 dirties a page it makes a KSM page, so reclaim keeps it.
 */
TEST_F_TIMEOUT(regress, madv_free_twin_survives_reclaim, 180)
{
	int i, tries, zeroed = 0, lost = 0, wrong = 0;
	char *a, *b, *lazy, *kept, *freed;
	const char *why;

	why = cgroup_enter(&self->in_cgroup, &self->memory_was_on);
	if (why)
		SKIP(return, "%s", why);
	/* No merging before the pages are lazily freed. */
	ASSERT_EQ(0, ksm_set("run", 0));
	a = map_anon(FREE_PAIRS);
	b = map_anon(FREE_PAIRS);
	lazy = map_anon(LAZY_PAGES);
	ASSERT_TRUE(a && b && lazy);
	fill_groups(a, FREE_PAIRS, 1, 0);
	fill_groups(b, FREE_PAIRS, 1, 0);
	fill_groups(lazy, LAZY_PAGES, 1, 100000);
	ASSERT_EQ(0, madvise(a, FREE_PAIRS * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(b, FREE_PAIRS * page_size(), MADV_MERGEABLE));
	/*
	 * The freed page alternates between a and b: whichever of a pair
	 * becomes the KSM page, half the time it is the freed one.
	 */
	for (i = 0; i < FREE_PAIRS; i++)
		ASSERT_EQ(0, madvise((i % 2 ? b : a) + i * page_size(),
				     page_size(), MADV_FREE));
	/* Unmergeable witnesses that reclaim does drop lazily freed pages. */
	ASSERT_EQ(0, madvise(lazy, LAZY_PAGES * page_size(), MADV_FREE));
	ASSERT_EQ(0, ksm_set("run", 1));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(a, b, FREE_PAIRS) == FREE_PAIRS,
			       WAIT_S))
		TH_LOG("%d of %d pairs merged (pages_sharing %ld)",
		       same_frames(a, b, FREE_PAIRS), FREE_PAIRS,
		       ksm_get("pages_sharing"));

	/* It may give up early (EAGAIN) having done some: again, a few times. */
	for (tries = 0; tries < 5 && zeroed < LAZY_PAGES; tries++) {
		write_str(CG "memory.reclaim", "1G");
		for (zeroed = 0, i = 0; i < LAZY_PAGES; i++)
			zeroed += page_zero(lazy + i * page_size());
	}
	if (!zeroed)
		SKIP(return, "reclaim dropped none of %d lazily freed pages",
		     LAZY_PAGES);

	for (i = 0; i < FREE_PAIRS; i++) {
		kept = (i % 2 ? a : b) + i * page_size();
		freed = (i % 2 ? b : a) + i * page_size();
		if (!page_holds(kept, i)) {
			if (lost++ < 5)
				TH_LOG("pair %d: the page not freed reads %s", i,
				       page_zero(kept) ? "zeroes" : "garbage");
		}
		/* The freed one: as written, or dropped. */
		wrong += !page_holds(freed, i) && !page_zero(freed);
	}
	TH_LOG(FREE_LOG, lost, FREE_PAIRS, zeroed, LAZY_PAGES);
	EXPECT_EQ(0, lost);
	EXPECT_EQ(0, wrong);
}

/* --- 2. exits free their mm while ksmd is stopped ---------------------- */

#define EXITERS 2000
#define MM_OBJECTS "/sys/kernel/slab/mm_struct/objects"

/* A child that registers with KSM, as prctl() and madvise() users do. */
static int exiter(int i)
{
	char *p;

	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		return 1;
	if (i % 2)
		return 0;
	p = map_anon(4);
	if (!p)
		return 2;
	memset(p, i, 4 * page_size());
	return madvise(p, 4 * page_size(), MADV_MERGEABLE) ? 3 : 0;
}

/* Fork @n exiters, 50 at a time; how many failed. */
static int run_exiters(int n)
{
	int i, j, batch, status, failed = 0;
	pid_t pids[50];

	for (i = 0; i < n; i += batch) {
		batch = n - i < 50 ? n - i : 50;
		for (j = 0; j < batch; j++) {
			pids[j] = fork();
			if (!pids[j])
				_exit(exiter(i + j));
		}
		for (j = 0; j < batch; j++)
			failed += pids[j] < 0 ||
				  waitpid(pids[j], &status, 0) != pids[j] ||
				  !WIFEXITED(status) || WEXITSTATUS(status);
	}
	return failed;
}

/* The log line of the test below, in one piece to grep for. */
#define EXIT_LOG "%d exits in %.1f s: mm_struct objects %+ld, Slab %+ld kB, MemAvailable %+ld kB (%ld B an exit)"

/*
 * With run=0, ksmd never scans: whatever an exit registered must still
 * go with the exit, not wait for a pass that never comes (6.12 frees the
 * mm_slot and drops the mm in __ksm_exit()).
 */
TEST_F_TIMEOUT(regress, exit_with_ksmd_stopped_frees_mm, 240)
{
	long mm0, mm1, avail0, avail1, slab0, slab1;
	double t0;

	if (read_long(MM_OBJECTS) < 0)
		SKIP(return, "no " MM_OBJECTS " (CONFIG_SLUB_DEBUG, SYSFS)");
	ASSERT_EQ(0, ksm_set("run", 2));
	ASSERT_EQ(0, ksm_set("run", 0));
	/* Warm up the caches first: the baseline then counts a steady state. */
	ASSERT_EQ(0, run_exiters(EXITERS / 2));
	mm0 = read_long(MM_OBJECTS);
	avail0 = meminfo_kb("MemAvailable");
	slab0 = meminfo_kb("Slab");

	t0 = now();
	ASSERT_EQ(0, run_exiters(EXITERS));
	/* An mm's last reference may go a little after wait() (lazy TLB). */
	WAIT_UNTIL(read_long(MM_OBJECTS) - mm0 < EXITERS / 10, 10);
	mm1 = read_long(MM_OBJECTS);
	avail1 = meminfo_kb("MemAvailable");
	slab1 = meminfo_kb("Slab");
	TH_LOG(EXIT_LOG, EXITERS, now() - t0, mm1 - mm0, slab1 - slab0,
	       avail1 - avail0, (avail0 - avail1) * 1024 / EXITERS);
	EXPECT_LT(mm1 - mm0, EXITERS / 10);
	/*
	 * MemAvailable is only logged: after the other tests it moved by
	 * 5 kB an exit on 6.12 too (page cache, per-CPU lists).  The mm_struct
	 * count is the signal: each leaked exit kept one.
	 */
	EXPECT_LT((slab1 - slab0) * 1024 / EXITERS, 512);
}

/* --- 3. unmerging while the KSM pages migrate -------------------------- */

#define UM_PAGES 2560

enum unmerger { BY_MADVISE, BY_PRCTL, BY_RUN_2 };

FIXTURE(unmerge) {
	struct ksm_knobs knobs;
};

FIXTURE_VARIANT(unmerge) {
	enum unmerger how;
	int rounds;	/* after run=2 merging starts over: slow on 6.12 */
};

FIXTURE_VARIANT_ADD(unmerge, madvise) { .how = BY_MADVISE, .rounds = 4 };
FIXTURE_VARIANT_ADD(unmerge, prctl) { .how = BY_PRCTL, .rounds = 4 };
FIXTURE_VARIANT_ADD(unmerge, run_2) { .how = BY_RUN_2, .rounds = 3 };

FIXTURE_SETUP(unmerge)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	if (access(NODE1, F_OK))
		SKIP(return, "needs two NUMA nodes (numa=fake=2)");
	ASSERT_EQ(0, ksm_flat_out(&self->knobs));
}

FIXTURE_TEARDOWN(unmerge)
{
	prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
	ksm_set("run", 2);
	ksm_knobs_restore(&self->knobs);
}

struct migrator {
	char *p;
	bool stop;			/* all four: LOAD() and STORE() */
	long calls;			/* move_pages() calls done */
	double started, took;		/* of the last call */
};

/* Move every page of the range to the other node, back and forth. */
static void *migrate_loop(void *arg)
{
	static void *pages[UM_PAGES];
	static int nodes[UM_PAGES], status[UM_PAGES];
	struct migrator *m = arg;
	int i, node = 1;

	for (i = 0; i < UM_PAGES; i++)
		pages[i] = m->p + i * page_size();
	while (!LOAD(m->stop)) {
		for (i = 0; i < UM_PAGES; i++)
			nodes[i] = node;
		STORE(m->started, now());
		/* KSM pages are mapped more than once: MOVE_ALL moves them. */
		syscall(SYS_move_pages, 0, UM_PAGES, pages, nodes, status,
			MPOL_MF_MOVE_ALL);
		STORE(m->took, now() - LOAD(m->started));
		STORE(m->calls, LOAD(m->calls) + 1);
		node = !node;
	}
	return NULL;
}

/* The log line of the test below, in one piece to grep for. */
#define UNMERGE_LOG "round %d: %d of %d pages still KSM after %s %.0f%% into a %.2f s move_pages() call"

/*
 * Unmerging must not miss a KSM page that is being migrated: its pte is
 * a migration entry for a moment, and the KSM page is mapped again after.
 * 6.12's break_ksm() counts a migration entry of a KSM page as one to
 * break.  Once the unmerger returned 0, no page of the range maps a KSM
 * page.  A move_pages() call first isolates the pages, then unmaps and
 * moves them a batch at a time: each round unmerges at another point
 * into a call.
 */
TEST_F_TIMEOUT(unmerge, unmerge_races_migration, 300)
{
	static const char * const names[] = { "MADV_UNMERGEABLE",
		"PR_SET_MEMORY_MERGE 0", "run=2" };
	double at, frac;
	struct migrator m;
	pthread_t thread;
	int round, left, ok, ret;
	long calls;
	char *p;

	for (round = 0; round < variant->rounds; round++) {
		/* prctl() makes what we map next mergeable. */
		if (variant->how == BY_PRCTL)
			ASSERT_EQ(0, prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0));
		p = map_anon(UM_PAGES);
		ASSERT_NE(NULL, p);
		/* Pairs: UM_PAGES / 2 KSM pages, two mappings each. */
		fill_groups(p, UM_PAGES, 2, 0);
		if (variant->how != BY_PRCTL)
			ASSERT_EQ(0, madvise(p, UM_PAGES * page_size(),
					     MADV_MERGEABLE));
		ASSERT_TRUE(WAIT_UNTIL(pairs_merged(p, UM_PAGES) == UM_PAGES / 2,
				       WAIT_S))
			TH_LOG("round %d: %d of %d pairs merged", round,
			       pairs_merged(p, UM_PAGES), UM_PAGES / 2);

		m.p = p;
		STORE(m.stop, false);
		STORE(m.calls, 0);
		ASSERT_EQ(0, pthread_create(&thread, NULL, migrate_loop, &m));
		/* How long a call takes, then a point into one. */
		WAIT_UNTIL(LOAD(m.calls) >= 2, 30);
		calls = LOAD(m.calls);
		WAIT_UNTIL(LOAD(m.calls) > calls, 30);
		frac = 0.2 + 0.7 * round / (variant->rounds - 1);
		at = LOAD(m.started) + frac * LOAD(m.took);
		while (now() < at)
			usleep(100);
		switch (variant->how) {
		case BY_MADVISE:
			ret = madvise(p, UM_PAGES * page_size(), MADV_UNMERGEABLE);
			break;
		case BY_PRCTL:
			ret = prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
			break;
		default:
			ret = ksm_set("run", 2);
			break;
		}
		STORE(m.stop, true);
		pthread_join(thread, NULL);
		ASSERT_EQ(0, ret) TH_LOG("%s: %s", names[variant->how],
					 strerror(errno));

		left = ksm_pages_written(p, UM_PAGES);
		TH_LOG(UNMERGE_LOG, round, left, UM_PAGES, names[variant->how],
		       frac * 100, LOAD(m.took));
		EXPECT_EQ(0, left);
		EXPECT_EQ(UM_PAGES, groups_holding(p, UM_PAGES, 2, 0));
		/* ksmd lets go of what was unmerged, within a few scans. */
		ok = WAIT_UNTIL(!ksm_get("pages_shared") &&
				!ksm_get("pages_sharing") &&
				!proc_merging_pages(getpid()), WAIT_S);
		EXPECT_TRUE(ok) TH_LOG("pages_shared %ld, pages_sharing %ld, ours %ld",
				       ksm_get("pages_shared"),
				       ksm_get("pages_sharing"),
				       proc_merging_pages(getpid()));
		ASSERT_EQ(0, munmap(p, UM_PAGES * page_size()));
		if (variant->how == BY_RUN_2)
			ASSERT_EQ(0, ksm_set("run", 1));
	}
}

/* --- 4. the cost of a pass, and the exit of many KSM pages ------------- */

#define COST_PAGES 65536
#define COST_GROUP 128
#define COST_WINDOWS 3
#define EXIT_KSM_PAGES 100000

/*
 * ksmd's CPU seconds per full scan: the least of @windows measures over
 * two scans each (a busy host only ever adds to one); -1 on timeout.
 */
static double pass_cost(pid_t ksmd, int windows)
{
	double cpu0, cpu1, cost, least = -1;
	long s0;

	/* Start at a pass boundary. */
	if (!wait_scans(1, WAIT_S))
		return -1;
	while (windows--) {
		cpu0 = task_cpu(ksmd);
		s0 = ksm_get("full_scans");
		if (!wait_scans(2, WAIT_S))
			return -1;
		cpu1 = task_cpu(ksmd);
		cost = (cpu1 - cpu0) / (ksm_get("full_scans") - s0);
		if (least < 0 || cost < least)
			least = cost;
	}
	return least;
}

/* The log line of the test below, in one piece to grep for. */
#define COST_LOG "ksmd per full scan of %d merged pages: %.3f s on %d KSM pages, %.3f s on %d: ratio %.2f"

/*
 * A pass over merged, unchanged pages costs what its visits cost: the
 * same COST_PAGES merged mappings cost about as much whether they are on
 * a few KSM pages (groups of COST_GROUP) or each on a KSM page of its own
 * (pairs merged, then one page of each unmapped).  6.12 visits every
 * mapping each pass, and for a page that stayed merged looks at no stable
 * node.  Visits cannot be told apart from work per KSM page (each has a
 * mapping to visit), so the bound is generous: 3x.  Guest time is the
 * host's: a busy host makes this noisy.
 */
TEST_F_TIMEOUT(regress, pass_cost_independent_of_ksm_pages, 300)
{
	double few, many;
	pid_t ksmd, pid;
	int go;

	ksmd = ksmd_pid();
	if (ksmd < 0 || task_cpu(ksmd) < 0)
		SKIP(return, "cannot read ksmd's CPU time");
	ASSERT_EQ(0, ksm_set("pages_to_scan", 5000));

	pid = spawn_holder(COST_PAGES, COST_GROUP, 0, &go);
	ASSERT_GT(pid, 0);
	ASSERT_TRUE(WAIT_UNTIL(proc_merging_pages(pid) == COST_PAGES, 120))
		TH_LOG("%ld of %d merged", proc_merging_pages(pid), COST_PAGES);
	few = pass_cost(ksmd, COST_WINDOWS);
	ASSERT_EQ(0, release_holder(pid, go));
	ASSERT_TRUE(WAIT_UNTIL(!ksm_get("pages_shared"), WAIT_S));

	pid = spawn_holder(2 * COST_PAGES, 0, 0, &go);
	ASSERT_GT(pid, 0);
	ASSERT_TRUE(WAIT_UNTIL(proc_merging_pages(pid) == 2 * COST_PAGES, 120))
		TH_LOG("%ld of %d merged", proc_merging_pages(pid),
		       2 * COST_PAGES);
	ASSERT_EQ(1, write(go, "h", 1));
	ASSERT_TRUE(WAIT_UNTIL(ksm_get("pages_shared") == COST_PAGES &&
			       !ksm_get("pages_sharing"), WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
	many = pass_cost(ksmd, COST_WINDOWS);
	TH_LOG(COST_LOG, COST_PAGES, few, COST_PAGES / COST_GROUP, many,
	       COST_PAGES, many / few);
	ASSERT_EQ(0, release_holder(pid, go));
	ASSERT_TRUE(WAIT_UNTIL(!ksm_get("pages_shared"), WAIT_S));
	ASSERT_GT(few, 0);
	ASSERT_GT(many, 0);
	EXPECT_LT((int)(100 * many / few), 300);
}

/*
 * A process with EXIT_KSM_PAGES KSM pages exits: everything is let go
 * within a bound, and with no soft lockup on the way (the harness fails
 * the run on one).
 */
TEST_F_TIMEOUT(regress, exit_of_many_ksm_pages, 300)
{
	double t0;
	pid_t pid;
	int go;

	ASSERT_EQ(0, ksm_set("pages_to_scan", 5000));
	pid = spawn_holder(2 * EXIT_KSM_PAGES, 2, 0, &go);
	ASSERT_GT(pid, 0);
	t0 = now();
	ASSERT_TRUE(WAIT_UNTIL(proc_merging_pages(pid) == 2 * EXIT_KSM_PAGES,
			       120))
		TH_LOG("%ld of %d merged", proc_merging_pages(pid),
		       2 * EXIT_KSM_PAGES);
	ASSERT_EQ(EXIT_KSM_PAGES, ksm_get("pages_shared"));
	TH_LOG("%d pages merged into %d KSM pages in %.1f s",
	       2 * EXIT_KSM_PAGES, EXIT_KSM_PAGES, now() - t0);
	t0 = now();
	ASSERT_EQ(0, release_holder(pid, go));
	EXPECT_TRUE(WAIT_UNTIL(!ksm_get("pages_shared") &&
			       !ksm_get("pages_sharing"), WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
	TH_LOG("exit and release of %d KSM pages: %.1f s", EXIT_KSM_PAGES,
	       now() - t0);
}

/* --- 5. sharers past max_page_sharing ---------------------------------- */

#define FORKS 600

/*
 * A forked child maps its parent's KSM pages.  6.12 takes every such
 * mapping as a sharer, past max_page_sharing ("KSM fork" bypass), and
 * counts it; a fresh page with the same contents then goes to a new KSM
 * page with room, never to the full one, and the two are counted as one
 * chain of two dups (stable_node_chains, stable_node_dups).
 */
TEST_F_TIMEOUT(regress, fork_sharers_beyond_max_page_sharing, 240)
{
	long mps = ksm_get("max_page_sharing");
	int i, go[2], status, exited = 0;
	pid_t pids[FORKS];
	char *a, *b, c;

	ASSERT_GE(mps, 2);
	ASSERT_LT(mps, FORKS);
	a = map_anon(2);
	ASSERT_NE(NULL, a);
	fill_groups(a, 2, 2, 7);
	ASSERT_EQ(0, madvise(a, 2 * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(a, a + page_size(), 1) == 1, WAIT_S));
	ASSERT_EQ(0, pipe(go));
	for (i = 0; i < FORKS; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (!pids[i]) {
			close(go[1]);
			_exit(read(go[0], &c, 1) < 0);
		}
	}
	close(go[0]);

	/* Every mapping counts: 2 + 2 * FORKS on one KSM page. */
	EXPECT_TRUE(WAIT_UNTIL(ksm_get("pages_sharing") == 1 + 2 * FORKS, WAIT_S))
		TH_LOG("pages_sharing %ld, want %d", ksm_get("pages_sharing"),
		       1 + 2 * FORKS);
	EXPECT_EQ(1, ksm_get("pages_shared"));
	EXPECT_EQ(2, proc_merging_pages(pids[FORKS - 1]));
	EXPECT_EQ(2 + 2 * FORKS, map_count(a));

	/* Equal contents, mapped after the forks: a KSM page of its own. */
	b = map_anon(2);
	ASSERT_NE(NULL, b);
	fill_groups(b, 2, 2, 7);
	ASSERT_EQ(0, madvise(b, 2 * page_size(), MADV_MERGEABLE));
	EXPECT_TRUE(WAIT_UNTIL(same_frames(b, b + page_size(), 1) == 1, WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
	EXPECT_EQ(0, same_frames(a, b, 1));
	EXPECT_EQ(2, ksm_get("pages_shared"));
	EXPECT_EQ(1, ksm_get("stable_node_chains"));
	EXPECT_EQ(2, ksm_get("stable_node_dups"));

	close(go[1]);
	for (i = 0; i < FORKS; i++)
		exited += waitpid(pids[i], &status, 0) == pids[i] &&
			  WIFEXITED(status) && !WEXITSTATUS(status);
	EXPECT_EQ(FORKS, exited);
	/*
	 * The parent's four mappings are left, on two KSM pages as in 6.12,
	 * or on one where twins are packed (stable_node_chains_prune_millisecs).
	 */
	EXPECT_TRUE(WAIT_UNTIL(ksm_get("pages_shared") +
			       ksm_get("pages_sharing") == 4 &&
			       ksm_get("pages_shared") <= 2, WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
	EXPECT_EQ(2, groups_holding(a, 2, 2, 7));
	EXPECT_EQ(2, groups_holding(b, 2, 2, 7));
}

#define SHARERS_SMALL 8192
#define SHARERS_BIG 32768

/*
 * ksmd's CPU seconds per page it visits in the pass that first visits the
 * @n sharers of one KSM page after they were all written (each to
 * contents of its own); 0 if ksmd visited too few for a measure, -1 on
 * failure.
 */
static double written_sharers_cost(struct __test_metadata *_metadata,
				   pid_t ksmd, int n)
{
	double cpu0, cpu1, end;
	long s0, scanned0, scanned;
	char *p;

	p = map_anon(n);
	if (!p)
		return -1;
	fill_groups(p, n, n, 5);
	if (madvise(p, n * page_size(), MADV_MERGEABLE))
		return -1;
	if (!WAIT_UNTIL(ksm_get("pages_shared") == 1 &&
			ksm_get("pages_sharing") == n - 1, WAIT_S)) {
		TH_LOG("%d pages: pages_shared %ld, pages_sharing %ld", n,
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
		return -1;
	}
	/*
	 * Stopped as a pass starts (in the sleep after the batch that ended
	 * the last), written, resumed: that pass visits each written page
	 * once.  The cost is per page visited all the same.
	 */
	if (ksm_set("sleep_millisecs", 50))
		return -1;
	s0 = ksm_get("full_scans");
	end = now() + WAIT_S;
	while (ksm_get("full_scans") == s0 && now() < end)
		usleep(100);
	if (ksm_set("run", 0))
		return -1;
	fill_groups(p, n, 1, 1000);
	cpu0 = task_cpu(ksmd);
	scanned0 = ksm_get("pages_scanned");
	if (ksm_set("run", 1) || !wait_scans(1, WAIT_S)) {
		TH_LOG("%d pages: no full scan in %d s", n, WAIT_S);
		return -1;
	}
	cpu1 = task_cpu(ksmd);
	scanned = ksm_get("pages_scanned") - scanned0;
	if (ksm_set("sleep_millisecs", 0))
		return -1;
	if (!WAIT_UNTIL(!ksm_get("pages_shared"), WAIT_S)) {
		TH_LOG("%d pages: pages_shared %ld, pages_sharing %ld", n,
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
		return -1;
	}
	if (groups_holding(p, n, 1, 1000) != n) {
		TH_LOG("%d pages: %d hold what was written", n,
		       groups_holding(p, n, 1, 1000));
		return -1;
	}
	munmap(p, n * page_size());
	/* Forgotten before the next round. */
	if (!WAIT_UNTIL(!proc_ksm_stat(getpid(), "ksm_rmap_items"), WAIT_S))
		return -1;
	TH_LOG("%d sharers: %ld visited, %.3f s", n, scanned, cpu1 - cpu0);
	return scanned >= n / 2 ? (cpu1 - cpu0) / scanned : 0;
}

/* Up to three tries for a measure of written_sharers_cost(). */
static double written_sharers_measure(struct __test_metadata *_metadata,
				      pid_t ksmd, int n)
{
	double cost = 0;
	int try;

	for (try = 0; try < 3 && !cost; try++)
		cost = written_sharers_cost(_metadata, ksmd, n);
	return cost;
}

/*
 * Sharers leave a KSM page one at a time, as they are written: what that
 * costs a page must not grow with the number of sharers.  6.12 takes them
 * all off at once when it finds the KSM page gone (each written page was
 * copied), and otherwise one in O(1) from a list.
 */
TEST_F_TIMEOUT(regress, written_sharers_scan_linear, 300)
{
	double small, big;
	pid_t ksmd;

	ksmd = ksmd_pid();
	if (ksmd < 0 || task_cpu(ksmd) < 0)
		SKIP(return, "cannot read ksmd's CPU time");
	ASSERT_EQ(0, ksm_set("run", 2));
	ASSERT_EQ(0, ksm_set("max_page_sharing", SHARERS_BIG + 1000));
	ASSERT_EQ(0, ksm_set("smart_scan", 0));
	ASSERT_EQ(0, ksm_set("pages_to_scan", 2048));
	ASSERT_EQ(0, ksm_set("run", 1));

	small = written_sharers_measure(_metadata, ksmd, SHARERS_SMALL);
	big = written_sharers_measure(_metadata, ksmd, SHARERS_BIG);
	TH_LOG("ksmd per written sharer visited: %.1f us of %d, %.1f us of %d: ratio %.2f",
	       small * 1e6, SHARERS_SMALL, big * 1e6, SHARERS_BIG, big / small);
	ASSERT_GT(small, 0);
	ASSERT_GT(big, 0);
	/* Flat, with room: a quadratic cost would be 4 times. */
	EXPECT_LT((int)(100 * big / small), 200);
}

/* --- 6. merge_across_nodes=0 and a migrated KSM page ------------------- */

/*
 * With merge_across_nodes=0 each node has its own stable tree.  A KSM
 * page migrated to another node goes to that node's tree (6.12 moves its
 * node there on the next visit): equal pages on the new node merge with
 * it, and equal pages on the old node get a KSM page of their own there.
 */
TEST_F_TIMEOUT(regress, numa_split_follows_migrated_ksm_page, 120)
{
	char *a, *b, *c;
	long scans;
	bool ok;

	if (access(NODE1, F_OK))
		SKIP(return, "needs two NUMA nodes (numa=fake=2)");
	if (self->merge_across_nodes < 0)
		SKIP(return, "no merge_across_nodes (CONFIG_NUMA)");
	ASSERT_EQ(0, ksm_set("run", 2));
	ASSERT_EQ(0, ksm_set("merge_across_nodes", 0));
	ASSERT_EQ(0, ksm_set("run", 1));

	a = map_on_node(2, 0);
	ASSERT_NE(NULL, a);
	fill_groups(a, 2, 2, 77);
	ASSERT_EQ(0, madvise(a, 2 * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(a, a + page_size(), 1) == 1, WAIT_S));
	ASSERT_EQ(0, node_of(a));
	/* A page ksmd holds for a moment does not move: try again. */
	ASSERT_TRUE(WAIT_UNTIL(move_to(a, 1) == 1, 10))
		TH_LOG("the KSM page stays on node %d", node_of(a));
	ASSERT_EQ(1, same_frames(a, a + page_size(), 1));
	/* ksmd sees it moved. */
	ASSERT_TRUE(wait_scans(2, WAIT_S));

	b = map_on_node(1, 1);
	c = map_on_node(2, 0);
	ASSERT_TRUE(b && c);
	fill_groups(b, 1, 1, 77);
	fill_groups(c, 2, 2, 77);
	ASSERT_EQ(1, node_of(b));
	ASSERT_EQ(0, node_of(c));
	ASSERT_EQ(0, madvise(b, page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(c, 2 * page_size(), MADV_MERGEABLE));
	/* 6.12 needs three scans at most: twice the checksum, then merge. */
	scans = ksm_get("full_scans") + 10;
	ok = WAIT_UNTIL((same_frames(a, b, 1) == 1 &&
			 same_frames(c, c + page_size(), 1) == 1) ||
			ksm_get("full_scans") >= scans, WAIT_S);
	EXPECT_TRUE(ok) TH_LOG("not even 10 full scans in %d s", WAIT_S);
	EXPECT_EQ(1, same_frames(a, b, 1))
		TH_LOG("node 1: a new page did not merge with the migrated KSM page");
	EXPECT_EQ(1, same_frames(c, c + page_size(), 1))
		TH_LOG("node 0: new twins did not merge");
	EXPECT_EQ(0, node_of(c));
	EXPECT_EQ(0, same_frames(a, c, 1));
	EXPECT_EQ(1, node_of(a));
	EXPECT_EQ(2, groups_holding(a, 2, 2, 77));
	EXPECT_EQ(1, groups_holding(b, 1, 1, 77));
	EXPECT_EQ(2, groups_holding(c, 2, 2, 77));
}

/* --- 7. what run=2 leaves ---------------------------------------------- */

struct scribbler {
	char *p;
	int pages;
	bool stop;		/* LOAD() and STORE() */
};

/* Keep a few pages changing, so that some are volatile. */
static void *scribble(void *arg)
{
	struct scribbler *s = arg;
	unsigned int n = 0;

	while (!LOAD(s->stop)) {
		fill_page(s->p + (n % s->pages) * page_size(), 200000 + n);
		n++;
		usleep(1000);
	}
	return NULL;
}

/*
 * run=2 unmerges everything and forgets every page (6.12:
 * unmerge_and_remove_all_rmap_items()): no page shared, sharing, unshared
 * or volatile, no process with a merged page or a tracked one, and the
 * count of full scans starts over (6.12 resets ksm_scan.seqnr).
 */
TEST_F_TIMEOUT(regress, run_2_zeroes_counters, 120)
{
	struct scribbler s;
	pthread_t thread;
	char *a, *u;
	pid_t pid;
	int go;

	/* First: the child must not inherit our pages. */
	pid = spawn_holder(64, 2, 3000, &go);
	ASSERT_GT(pid, 0);
	a = map_anon(128);
	u = map_anon(64);
	s.p = map_anon(16);
	ASSERT_TRUE(a && u && s.p);
	fill_groups(a, 128, 2, 0);
	fill_groups(u, 64, 1, 1000);
	fill_groups(s.p, 16, 1, 2000);
	ASSERT_EQ(0, madvise(a, 128 * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(u, 64 * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(s.p, 16 * page_size(), MADV_MERGEABLE));
	s.pages = 16;
	STORE(s.stop, false);
	ASSERT_EQ(0, pthread_create(&thread, NULL, scribble, &s));

	EXPECT_TRUE(WAIT_UNTIL(proc_merging_pages(getpid()) == 128 &&
			       proc_merging_pages(pid) == 64 &&
			       ksm_get("pages_unshared") >= 64, WAIT_S))
		TH_LOG("merged: ours %ld, child %ld; pages_unshared %ld",
		       proc_merging_pages(getpid()), proc_merging_pages(pid),
		       ksm_get("pages_unshared"));
	STORE(s.stop, true);
	pthread_join(thread, NULL);
	TH_LOG("before: shared %ld sharing %ld unshared %ld volatile %ld full_scans %ld",
	       ksm_get("pages_shared"), ksm_get("pages_sharing"),
	       ksm_get("pages_unshared"), ksm_get("pages_volatile"),
	       ksm_get("full_scans"));

	ASSERT_EQ(0, ksm_set("run", 2));
	EXPECT_EQ(0, ksm_get("pages_shared"));
	EXPECT_EQ(0, ksm_get("pages_sharing"));
	EXPECT_EQ(0, ksm_get("pages_unshared"));
	EXPECT_EQ(0, ksm_get("pages_volatile"));
	EXPECT_EQ(0, ksm_get("stable_node_chains"));
	EXPECT_EQ(0, ksm_get("stable_node_dups"));
	EXPECT_EQ(0, ksm_get("general_profit"));
	EXPECT_EQ(0, ksm_get("full_scans"));
	EXPECT_EQ(0, proc_merging_pages(getpid()));
	EXPECT_EQ(0, proc_merging_pages(pid));
	EXPECT_EQ(0, proc_ksm_stat(getpid(), "ksm_rmap_items"));
	EXPECT_EQ(0, proc_ksm_stat(pid, "ksm_rmap_items"));
	EXPECT_EQ(128, groups_holding(a, 128, 2, 0));
	EXPECT_EQ(0, ksm_pages_written(a, 128));
	EXPECT_EQ(64, groups_holding(u, 64, 1, 1000));
	EXPECT_EQ(0, release_holder(pid, go));
}

/* --- 8a. a twin that fails to merge ------------------------------------ */

#define TWIN_PAIRS 64

/* The log line of the test below, in one piece to grep for. */
#define TWIN_LOG "%d samples, %d with pages_shared > pages_sharing; %d held pairs' pages on KSM pages; shared %ld sharing %ld"

/*
 * Merging two pages makes one of them the KSM page, then maps the other
 * to it.  If the second step fails, 6.12 breaks the lone mapping again
 * (try_to_merge_two_pages(): "a ksm page with only one pte"): no KSM page
 * is ever left that nothing shared.  Pages held by a pipe (vmsplice())
 * cannot be merged; one page of each pair is held, alternately the first
 * and the second, whichever ksmd makes the KSM page.  Unheld pairs merge
 * alongside, to show merging goes on.
 */
TEST_F_TIMEOUT(regress, twin_failure_leaves_no_lone_ksm_page, 120)
{
	int i, fds[2], bad_samples = 0, samples = 0, lone;
	char *a, *b, *c, *d;
	struct iovec iov;
	long shared, sharing;
	double end;

	a = map_anon(TWIN_PAIRS);
	b = map_anon(TWIN_PAIRS);
	c = map_anon(TWIN_PAIRS);
	d = map_anon(TWIN_PAIRS);
	ASSERT_TRUE(a && b && c && d);
	fill_groups(a, TWIN_PAIRS, 1, 0);
	fill_groups(b, TWIN_PAIRS, 1, 0);
	fill_groups(c, TWIN_PAIRS, 1, 500);
	fill_groups(d, TWIN_PAIRS, 1, 500);
	ASSERT_EQ(0, pipe(fds));
	if (fcntl(fds[1], F_SETPIPE_SZ, TWIN_PAIRS * page_size()) <
	    TWIN_PAIRS * page_size())
		SKIP(return, "cannot size a pipe for %d pages", TWIN_PAIRS);
	for (i = 0; i < TWIN_PAIRS; i++) {
		iov.iov_base = (i % 2 ? b : a) + i * page_size();
		iov.iov_len = page_size();
		if (vmsplice(fds[1], &iov, 1, 0) != page_size())
			SKIP(return, "vmsplice: %s", strerror(errno));
	}
	ASSERT_EQ(0, madvise(a, TWIN_PAIRS * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(b, TWIN_PAIRS * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(c, TWIN_PAIRS * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(d, TWIN_PAIRS * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(c, d, TWIN_PAIRS) == TWIN_PAIRS,
			       WAIT_S));

	/* Settled: nothing but the free pairs may count, sampled for a while. */
	ASSERT_TRUE(wait_scans(1, WAIT_S));
	end = now() + 3;
	while (now() < end) {
		shared = ksm_get("pages_shared");
		sharing = ksm_get("pages_sharing");
		samples++;
		if (shared > sharing && bad_samples++ < 3)
			TH_LOG("pages_shared %ld > pages_sharing %ld",
			       shared, sharing);
		usleep(5000);
	}
	ASSERT_TRUE(wait_scans(3, WAIT_S));
	/* ksmd stops between batches: no merge is half done now. */
	ASSERT_EQ(0, ksm_set("run", 0));
	lone = ksm_pages_written(a, TWIN_PAIRS) +
	       ksm_pages_written(b, TWIN_PAIRS);
	TH_LOG(TWIN_LOG, samples, bad_samples, lone, ksm_get("pages_shared"),
	       ksm_get("pages_sharing"));
	EXPECT_EQ(0, bad_samples);
	EXPECT_EQ(0, lone);
	EXPECT_EQ(TWIN_PAIRS, ksm_get("pages_shared"));
	EXPECT_EQ(TWIN_PAIRS, ksm_get("pages_sharing"));
	for (i = 0; i < TWIN_PAIRS; i++)
		EXPECT_EQ(2, map_count(c + i * page_size())) TH_LOG("pair %d", i);
	EXPECT_EQ(TWIN_PAIRS, pages_holding(a, TWIN_PAIRS, 0));
	EXPECT_EQ(TWIN_PAIRS, pages_holding(b, TWIN_PAIRS, 0));
	close(fds[0]);
	close(fds[1]);
}

/* --- 8b. pages_unshared between passes --------------------------------- */

#define UNIQUE_PAGES 1000

/*
 * 6.12 counts a page in pages_unshared from its insertion in the unstable
 * tree until its next visit takes it out (to put it back at once if it
 * did not change): the unstable tree is rebuilt every pass, the count is
 * not.  Unique, unchanged pages stay counted at any moment.
 */
TEST_F_TIMEOUT(regress, unshared_count_holds_across_passes, 120)
{
	long v, lo = -1, hi = -1, scans;
	int samples = 0;
	char *p;

	ASSERT_EQ(0, ksm_set("smart_scan", 0));
	ASSERT_EQ(0, ksm_set("pages_to_scan", 100));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 20));
	p = map_anon(UNIQUE_PAGES);
	ASSERT_NE(NULL, p);
	fill_groups(p, UNIQUE_PAGES, 1, 0);
	ASSERT_EQ(0, madvise(p, UNIQUE_PAGES * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(ksm_get("pages_unshared") == UNIQUE_PAGES,
			       WAIT_S))
		TH_LOG("pages_unshared %ld", ksm_get("pages_unshared"));

	/* At every moment of a few passes, batch boundaries and pass ends alike. */
	scans = ksm_get("full_scans") + 4;
	while (ksm_get("full_scans") < scans && samples < 100000) {
		v = ksm_get("pages_unshared");
		if (lo < 0 || v < lo)
			lo = v;
		if (v > hi)
			hi = v;
		samples++;
		usleep(2000 + rand() % 3000);
	}
	TH_LOG("%d samples over 4 passes: pages_unshared from %ld to %ld",
	       samples, lo, hi);
	EXPECT_GE(ksm_get("full_scans"), scans);
	/* One page may be in between its removal and its insertion. */
	EXPECT_GE(lo, UNIQUE_PAGES - 1);
	EXPECT_LE(hi, UNIQUE_PAGES);
}

/* --- 8c. exits and full_scans ------------------------------------------ */

#define BIG_PAGES 2000

/*
 * A pass ends when ksmd has been through every registered mm.  Processes
 * that register and exit while ksmd is in the middle of another one end
 * no pass.
 */
TEST_F_TIMEOUT(regress, exits_end_no_pass, 120)
{
	long items, scans;
	pid_t pid;
	int go;

	ASSERT_EQ(0, ksm_set("pages_to_scan", 100));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 500));
	pid = spawn_holder(BIG_PAGES, 1, 0, &go);
	ASSERT_GT(pid, 0);
	/* ksmd is in the middle of the big one's first pass. */
	ASSERT_TRUE(WAIT_UNTIL((items = proc_ksm_stat(pid, "ksm_rmap_items")) > 0,
			       WAIT_S));
	scans = ksm_get("full_scans");
	ASSERT_EQ(0, run_exiters(100));
	items = proc_ksm_stat(pid, "ksm_rmap_items");
	TH_LOG("full_scans %ld -> %ld; the big one %ld of %d pages in",
	       scans, ksm_get("full_scans"), items, BIG_PAGES);
	if (items >= BIG_PAGES) {
		release_holder(pid, go);
		SKIP(return, "ksmd finished the pass meanwhile: too slow a guest");
	}
	EXPECT_EQ(scans, ksm_get("full_scans"));
	EXPECT_EQ(0, release_holder(pid, go));
}

/*
 * With run=0 ksmd does not scan, and so ends no pass: not even when the
 * mm it stopped in (the last one) exits.
 */
TEST_F_TIMEOUT(regress, exit_with_ksmd_stopped_ends_no_pass, 120)
{
	long items, scans;
	pid_t pid;
	int go;

	ASSERT_EQ(0, ksm_set("pages_to_scan", 100));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 200));
	pid = spawn_holder(BIG_PAGES, 1, 0, &go);
	ASSERT_GT(pid, 0);
	ASSERT_TRUE(WAIT_UNTIL(proc_ksm_stat(pid, "ksm_rmap_items") > 0, WAIT_S));
	/* Stopped in the middle of it (run=0 waits out the batch). */
	ASSERT_EQ(0, ksm_set("run", 0));
	items = proc_ksm_stat(pid, "ksm_rmap_items");
	scans = ksm_get("full_scans");
	if (items >= BIG_PAGES) {
		release_holder(pid, go);
		SKIP(return, "ksmd finished the pass meanwhile: too slow a guest");
	}
	EXPECT_EQ(0, release_holder(pid, go));
	EXPECT_EQ(scans, ksm_get("full_scans"))
		TH_LOG("stopped %ld of %d pages in: full_scans %ld -> %ld",
		       items, BIG_PAGES, scans, ksm_get("full_scans"));
}

/* --- 8d. layout knobs -------------------------------------------------- */

/*
 * max_page_sharing and merge_across_nodes say how KSM pages are built:
 * 6.12 refuses a change (EBUSY) while any KSM page is counted, even one
 * left with a single sharer, accepts the value they have, and accepts a
 * change once none is left.
 */
TEST_F_TIMEOUT(regress, layout_knobs_busy_while_ksm_pages_exist, 120)
{
	long mps = self->max_page_sharing, man = self->merge_across_nodes;
	char *a;

	a = map_anon(2);
	ASSERT_NE(NULL, a);
	fill_groups(a, 2, 2, 9);
	ASSERT_EQ(0, madvise(a, 2 * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(a, a + page_size(), 1) == 1, WAIT_S));

	EXPECT_EQ(-EBUSY, ksm_write("max_page_sharing", mps + 1));
	EXPECT_EQ(0, ksm_write("max_page_sharing", mps));
	if (man >= 0) {
		EXPECT_EQ(-EBUSY, ksm_write("merge_across_nodes", !man));
		EXPECT_EQ(0, ksm_write("merge_across_nodes", man));
	}

	/* One sharer left: still a KSM page. */
	fill_page(a + page_size(), 10);
	ASSERT_TRUE(WAIT_UNTIL(ksm_get("pages_sharing") == 0 &&
			       ksm_get("pages_shared") == 1, WAIT_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"));
	EXPECT_EQ(-EBUSY, ksm_write("max_page_sharing", mps + 1));
	if (man >= 0)
		EXPECT_EQ(-EBUSY, ksm_write("merge_across_nodes", !man));

	/* None left. */
	ASSERT_EQ(0, ksm_set("run", 2));
	EXPECT_EQ(0, ksm_write("max_page_sharing", mps + 1));
	EXPECT_EQ(mps + 1, ksm_get("max_page_sharing"));
	EXPECT_EQ(0, ksm_write("max_page_sharing", mps));
	if (man >= 0) {
		EXPECT_EQ(0, ksm_write("merge_across_nodes", !man));
		EXPECT_EQ(!man, ksm_get("merge_across_nodes"));
		EXPECT_EQ(0, ksm_write("merge_across_nodes", man));
	}
	EXPECT_EQ(1, page_holds(a, 9));
	EXPECT_EQ(1, page_holds(a + page_size(), 10));
}

/* --- 9. run=2 while memory goes offline -------------------------------- */

#define MEMDIR "/sys/devices/system/memory/"
#define HOT_PAIRS 256
#define HOT_CANDIDATES 16

/* Write @what to the state of memory block @block, in a child. */
static pid_t block_state_async(long block, const char *what, int limit)
{
	char path[128];
	pid_t pid;

	snprintf(path, sizeof(path), MEMDIR "memory%ld/state", block);
	pid = fork();
	if (!pid) {
		/* A signal ends an offline that would retry for ever. */
		alarm(limit);
		_exit(-write_str(path, what));
	}
	return pid;
}

/* The same, waited for: 0, a positive errno, or -1 if it did not end. */
static int block_state(long block, const char *what, int limit)
{
	pid_t pid = block_state_async(block, what, limit);
	int status;

	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static bool block_online(long block)
{
	char path[128], state[16] = "";
	int fd, n;

	snprintf(path, sizeof(path), MEMDIR "memory%ld/state", block);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, state, sizeof(state) - 1);
	close(fd);
	return n >= 6 && !strncmp(state, "online", 6);
}

/* The NUMA node of a memory block, or -1. */
static int block_node(long block)
{
	char path[128];
	int node;

	for (node = 0; node < 64; node++) {
		snprintf(path, sizeof(path), MEMDIR "memory%ld/node%d", block,
			 node);
		if (!access(path, F_OK))
			return node;
	}
	return -1;
}

/* How many of @pages pages from @p are in memory block @block. */
static int pages_in_block(char *p, int pages, long block, long bsize)
{
	uint64_t *e = calloc(pages, sizeof(*e));
	int i, n = 0;

	if (e && !pagemap_read(p, pages, e))
		for (i = 0; i < pages; i++)
			n += (e[i] & PM_PRESENT) &&
			     (long)((e[i] & PM_PFN_MASK) * page_size() / bsize) ==
			     block;
	free(e);
	return n;
}

/* The log line of the test below, in one piece to grep for. */
#define OFFLINE_LOG "memory%ld (node %d, %d of our %d pages): %s during run=2, which left %d pages on KSM pages, %ld counted"

/*
 * ZONE_DEVICE pages cannot be had in this guest: not tested.  Memory
 * going offline can be: its KSM pages migrate away while run=2 unmerges
 * everything.  run=2 must return with every page unmerged, and nothing
 * may break.
 *
 * A block of the kernel zone rarely goes offline (kernel memory, holes),
 * so the test takes the first from the top that does, onlines it movable
 * (our pages then come from there first) and offlines it again, with our
 * KSM pages in it, during run=2.  It goes back to the kernel zone after.
 */
TEST_F_TIMEOUT(regress, run_2_during_memory_offline, 240)
{
	int status, fd, n, ret, left, held, node, in_block, err = -1;
	long bsize = 0, block, shared, tries = 0;
	char buf[32] = "";
	bool offlined;
	pid_t pid;
	char *a;

	fd = open(MEMDIR "block_size_bytes", O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		bsize = strtol(buf, NULL, 16);
		close(fd);
	}
	if (bsize <= 0)
		SKIP(return, "no memory blocks (CONFIG_MEMORY_HOTPLUG)");

	/* From the top of memory down, the first block that goes offline. */
	for (block = 4095; block > 0 && tries < HOT_CANDIDATES && err; block--) {
		if (!block_online(block))
			continue;
		tries++;
		err = block_state(block, "offline", 20);
	}
	if (err)
		SKIP(return, "none of %ld memory blocks would go offline", tries);
	block++;
	self->movable_block = block;
	self->block_moved = true;
	err = block_state(block, "online_movable", 20);
	if (err) {
		self->block_moved = false;
		block_state(block, "online", 20);
		SKIP(return, "memory%ld would not go online movable: %s", block,
		     err > 0 ? strerror(err) : "timed out");
	}
	node = block_node(block);
	a = node >= 0 ? map_on_node(2 * HOT_PAIRS, node) :
			map_anon(2 * HOT_PAIRS);
	ASSERT_NE(NULL, a);
	fill_groups(a, 2 * HOT_PAIRS, 2, 0);
	ASSERT_EQ(0, madvise(a, 2 * HOT_PAIRS * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(pairs_merged(a, 2 * HOT_PAIRS) == HOT_PAIRS,
			       WAIT_S));
	in_block = pages_in_block(a, 2 * HOT_PAIRS, block, bsize);
	if (!in_block)
		SKIP(return, "none of our pages is in memory%ld", block);

	pid = block_state_async(block, "offline", 20);
	ASSERT_GT(pid, 0);
	ret = ksm_set("run", 2);
	left = ksm_pages_written(a, 2 * HOT_PAIRS);
	shared = ksm_get("pages_shared") + ksm_get("pages_sharing");
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	offlined = WIFEXITED(status) && !WEXITSTATUS(status);
	held = groups_holding(a, 2 * HOT_PAIRS, 2, 0);
	TH_LOG(OFFLINE_LOG, block, node, in_block, 2 * HOT_PAIRS, offlined ?
	       "went offline" : WIFEXITED(status) ?
	       strerror(WEXITSTATUS(status)) : "timed out", left, shared);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(0, left);
	EXPECT_EQ(0, shared);
	EXPECT_EQ(2 * HOT_PAIRS, held);
	EXPECT_TRUE(offlined);
}

TEST_HARNESS_MAIN
