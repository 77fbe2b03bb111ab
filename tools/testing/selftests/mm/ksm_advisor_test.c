// SPDX-License-Identifier: GPL-2.0
/*
 * The scan-time advisor (advisor_mode=scan-time) with a real workload.
 *
 * 6.12 (mm/ksm.c, scan_time_advisor()) sets pages_to_scan at the end of
 * each full scan: scaled by the scan's length over advisor_target_scan_time
 * (whole seconds, at least 1), times a smoothed trend of scan lengths, kept
 * between 10% and advisor_max_cpu of ksmd's CPU at the cost per page just
 * measured, and at most advisor_max_pages_to_scan.  advisor_min_pages_to_scan
 * is where it starts when the mode is chosen.
 *
 * Two processes with 96 MiB of mergeable memory each (30% duplicates, the
 * rest unique): pages_to_scan must rise from its start to what scanning
 * that memory within the target time takes at the very least
 * (pages * sleep_millisecs / target, were scanning free), within the
 * advisor's bounds.  Then one process exits and the other unmaps all but
 * 48 MiB: it must come down again, to half what it was, and stay there
 * (but for one step) over the next SETTLE_STEPS scans.  The values are
 * printed as they change, "# t=..s pages_to_scan=..".
 *
 * Also the sysfs side: pages_to_scan is the advisor's alone (EINVAL) while
 * it runs, it starts at advisor_min_pages_to_scan, and leaving the mode
 * gives it back, reset to 100.
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

#define WORKERS		2
#define WORKER_PAGES	(96 << 8)	/* 96 MiB */
#define KEPT_PAGES	(48 << 8)	/* what the one left keeps */
#define DUP_PERCENT	30

#define TARGET_S	2
#define SLEEP_MS	50
#define START_PAGES	500	/* advisor_min_pages_to_scan when chosen */
#define MIN_PAGES	50	/* ... and afterwards */
#define MAX_PAGES	2000	/* advisor_max_pages_to_scan */

#define RISE_S		50	/* bounds of the two phases */
#define FALL_S		40
#define SETTLE_STEPS	4	/* then watched for so many scans */
#define SETTLE_S	30
#define SAMPLE_US	100000
#define PRINT_S		2.0	/* print unchanged values this often */

/* pages_to_scan without which @pages cannot be scanned in TARGET_S. */
#define NEEDED(pages)	((pages) * SLEEP_MS / (TARGET_S * 1000))

/* 6.12's DEFAULT_PAGES_TO_SCAN, what advisor_mode=none resets it to. */
#define DEFAULT_PAGES	100

FIXTURE(advisor) {
	struct ksm_knobs knobs;
	long smart_scan, target, min_pages, max_pages, max_cpu;
	char mode[16];
	pid_t pid[WORKERS];
	int cmd[WORKERS][2], ack[2];
};

static int advisor_mode(char *buf, int size)
{
	char raw[64] = "";
	int fd = open(KSM_DIR "advisor_mode", O_RDONLY), n;
	char *a, *b;

	if (fd < 0)
		return -1;
	n = read(fd, raw, sizeof(raw) - 1);
	close(fd);
	a = strchr(raw, '[');
	b = a ? strchr(a, ']') : NULL;
	if (n <= 0 || !b)
		return -1;
	snprintf(buf, size, "%.*s", (int)(b - a - 1), a + 1);
	return 0;
}

FIXTURE_SETUP(advisor)
{
	int i;

	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	if (advisor_mode(self->mode, sizeof(self->mode)))
		SKIP(return, "no advisor_mode in " KSM_DIR);
	ksm_knobs_save(&self->knobs);
	self->smart_scan = ksm_get("smart_scan");
	self->target = ksm_get("advisor_target_scan_time");
	self->min_pages = ksm_get("advisor_min_pages_to_scan");
	self->max_pages = ksm_get("advisor_max_pages_to_scan");
	self->max_cpu = ksm_get("advisor_max_cpu");
	for (i = 0; i < WORKERS; i++)
		self->pid[i] = -1;
}

FIXTURE_TEARDOWN_PARENT(advisor)
{
	int i;

	for (i = 0; i < WORKERS; i++) {
		if (self->pid[i] <= 0)
			continue;
		kill(self->pid[i], SIGKILL);
		waitpid(self->pid[i], NULL, 0);
	}
	ksm_set("run", 2);
	write_str(KSM_DIR "advisor_mode", "none");
	ksm_set("advisor_target_scan_time", self->target);
	ksm_set("advisor_min_pages_to_scan", self->min_pages);
	ksm_set("advisor_max_pages_to_scan", self->max_pages);
	ksm_set("advisor_max_cpu", self->max_cpu);
	ksm_set("smart_scan", self->smart_scan);
	ksm_knobs_restore(&self->knobs);
	write_str(KSM_DIR "advisor_mode", self->mode);
}

static int write_knob(const char *name, const char *value)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return write_str(path, value);
}

TEST_F(advisor, owns_pages_to_scan)
{
	char mode[16];

	ASSERT_EQ(0, ksm_set("run", 0));
	ASSERT_EQ(0, write_knob("advisor_mode", "none"));
	ASSERT_EQ(0, ksm_set("pages_to_scan", 1234));
	ASSERT_EQ(0, ksm_set("advisor_min_pages_to_scan", 700));
	/* set_advisor_defaults(): the advisor starts from its minimum. */
	ASSERT_EQ(0, write_knob("advisor_mode", "scan-time"));
	ASSERT_EQ(0, advisor_mode(mode, sizeof(mode)));
	EXPECT_STREQ("scan-time", mode);
	EXPECT_EQ(700, ksm_get("pages_to_scan"));
	/* pages_to_scan_store(): -EINVAL while an advisor runs. */
	EXPECT_EQ(-EINVAL, write_knob("pages_to_scan", "1000"));
	EXPECT_EQ(-EINVAL, write_knob("pages_to_scan", "700"));
	EXPECT_EQ(700, ksm_get("pages_to_scan"));
	/* Choosing the mode it has changes nothing. */
	ASSERT_EQ(0, ksm_set("advisor_min_pages_to_scan", 800));
	ASSERT_EQ(0, write_knob("advisor_mode", "scan-time"));
	EXPECT_EQ(700, ksm_get("pages_to_scan"));
	/* Back to none: the default, and writable again. */
	ASSERT_EQ(0, write_knob("advisor_mode", "none"));
	ASSERT_EQ(0, advisor_mode(mode, sizeof(mode)));
	EXPECT_STREQ("none", mode);
	EXPECT_EQ(DEFAULT_PAGES, ksm_get("pages_to_scan"));
	EXPECT_EQ(0, write_knob("pages_to_scan", "1234"));
	EXPECT_EQ(1234, ksm_get("pages_to_scan"));
}

/* A worker: WORKER_PAGES mergeable pages; commands on @cmd, answers on @ack. */
static void worker(int id, int cmd, int ack)
{
	long ps = page_size(), i;
	char *p = map_anon(WORKER_PAGES);
	char c = 'r';

	if (!p)
		_exit(1);
	for (i = 0; i < WORKER_PAGES; i++)
		fill_page(p + i * ps, i % 100 < DUP_PERCENT ? i % 1024 :
			  4096 + id * WORKER_PAGES + i);
	if (madvise(p, WORKER_PAGES * ps, MADV_MERGEABLE))
		_exit(1);
	if (write(ack, &c, 1) != 1)
		_exit(1);
	/* 's': unmap all but KEPT_PAGES; 'x' or EOF: exit. */
	while (read(cmd, &c, 1) == 1 && c == 's') {
		if (munmap(p + KEPT_PAGES * ps, (WORKER_PAGES - KEPT_PAGES) * ps))
			_exit(1);
		if (write(ack, &c, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

/* pages_to_scan over time; every value seen must be within the bounds. */
struct series {
	double t0, printed;
	long last, lo, hi, out_of_bounds;
};

static long sample(struct series *s, const char *phase)
{
	long p = ksm_get("pages_to_scan");
	double t = now();

	if (p != s->last || t - s->printed >= PRINT_S) {
		printf("# t=%.1fs pages_to_scan=%ld full_scans=%ld %s\n",
		       t - s->t0, p, ksm_get("full_scans"), phase);
		fflush(stdout);
		s->printed = t;
	}
	s->last = p;
	if (p < s->lo)
		s->lo = p;
	if (p > s->hi)
		s->hi = p;
	s->out_of_bounds += p < MIN_PAGES || p > MAX_PAGES;
	return p;
}

TEST_F_TIMEOUT(advisor, follows_memory, 200)
{
	struct series s = { .lo = START_PAGES, .hi = START_PAGES };
	long need_large = NEEDED((long)WORKERS * WORKER_PAGES);
	long need_small = NEEDED((long)KEPT_PAGES);
	long p, n, at_shrink, scans, scans0, scanned0, skipped0;
	int i, steps = 0, high = 0;
	double end;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(self->ack));
	ASSERT_EQ(0, ksm_set("run", 2));	/* the cursor at a scan's start */
	ASSERT_EQ(0, write_knob("advisor_mode", "none"));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", SLEEP_MS));
	/* Full scans of all the memory, for scan times that follow it. */
	ASSERT_EQ(0, ksm_set("smart_scan", 0));
	ASSERT_EQ(0, ksm_set("advisor_target_scan_time", TARGET_S));
	ASSERT_EQ(0, ksm_set("advisor_min_pages_to_scan", START_PAGES));
	ASSERT_EQ(0, ksm_set("advisor_max_pages_to_scan", MAX_PAGES));
	for (i = 0; i < WORKERS; i++) {
		ASSERT_EQ(0, pipe(self->cmd[i]));
		/* Not straight into *self: it is shared with the children. */
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid)
			worker(i, self->cmd[i][0], self->ack[1]);
		self->pid[i] = pid;
	}
	for (i = 0; i < WORKERS; i++)
		ASSERT_EQ(1, read(self->ack[0], &c, 1));

	ASSERT_EQ(0, write_knob("advisor_mode", "scan-time"));
	ASSERT_EQ(START_PAGES, ksm_get("pages_to_scan"));
	/*
	 * 6.12 never holds pages_to_scan to advisor_min_pages_to_scan after
	 * the start: a lower minimum leaves it room to come down.  The
	 * first step measures ksmd's CPU since boot, not since a previous
	 * step: no CPU ceiling for that step, lest ksmd's past crawl it.
	 */
	ASSERT_EQ(0, ksm_set("advisor_min_pages_to_scan", MIN_PAGES));
	ASSERT_EQ(0, ksm_set("advisor_max_cpu", 1000000));
	scans = ksm_get("full_scans");
	scans0 = scans;
	scanned0 = ksm_get("pages_scanned");
	skipped0 = ksm_get("pages_skipped");
	s.t0 = now();
	s.last = -1;
	ASSERT_EQ(0, ksm_set("run", 1));
	TH_LOG("%d x %d MiB, %d%% duplicate; target %d s, sleep %d ms",
	       WORKERS, WORKER_PAGES >> 8, DUP_PERCENT, TARGET_S, SLEEP_MS);
	TH_LOG("%ld pages per batch needed at least", need_large);
	end = now() + RISE_S;
	while (ksm_get("full_scans") == scans && now() < end) {
		sample(&s, "large");
		usleep(SAMPLE_US / 10);
	}
	ASSERT_EQ(0, ksm_set("advisor_max_cpu", self->max_cpu));

	/* Large memory: up from the start, to what it takes at least. */
	while ((p = sample(&s, "large")) < need_large && now() < end)
		usleep(SAMPLE_US);
	EXPECT_GE(p, need_large)
		TH_LOG("pages_to_scan %ld after %d s, %ld needed", p, RISE_S,
		       need_large);
	EXPECT_GT(s.hi, START_PAGES);
	ASSERT_EQ(0, s.out_of_bounds)
		TH_LOG("pages_to_scan went from %ld to %ld, bounds %d to %d",
		       s.lo, s.hi, MIN_PAGES, MAX_PAGES);

	TH_LOG("%ld full scans, %ld pages scanned, %ld skipped",
	       ksm_get("full_scans") - scans0,
	       ksm_get("pages_scanned") - scanned0,
	       ksm_get("pages_skipped") - skipped0);

	/* One process exits, the other unmaps half of its memory. */
	ASSERT_EQ(1, write(self->cmd[0][1], "x", 1));
	ASSERT_EQ(self->pid[0], waitpid(self->pid[0], NULL, 0));
	self->pid[0] = -1;
	ASSERT_EQ(1, write(self->cmd[1][1], "s", 1));
	ASSERT_EQ(1, read(self->ack[0], &c, 1));
	at_shrink = p;
	scans = ksm_get("full_scans");
	TH_LOG("%d MiB left: %ld pages per batch needed at least; down from %ld",
	       KEPT_PAGES >> 8, need_small, at_shrink);
	end = now() + FALL_S;
	while ((p = sample(&s, "small")) > at_shrink / 2 && now() < end)
		usleep(SAMPLE_US);
	EXPECT_LE(p, at_shrink / 2)
		TH_LOG("pages_to_scan %ld after %d s, from %ld", p, FALL_S,
		       at_shrink);
	EXPECT_LT(scans, ksm_get("full_scans"));
	/* ... and stays down: one of the next steps may jump, no more. */
	scans = ksm_get("full_scans");
	end = now() + SETTLE_S;
	while (steps < SETTLE_STEPS && now() < end) {
		usleep(SAMPLE_US);
		n = ksm_get("full_scans");
		p = sample(&s, "small");
		if (n == scans)
			continue;
		scans = n;
		steps++;
		high += p > at_shrink / 2;
	}
	EXPECT_EQ(SETTLE_STEPS, steps);
	EXPECT_GE(1, high)
		TH_LOG("%d of %d steps back above %ld", high, steps,
		       at_shrink / 2);
	EXPECT_EQ(0, s.out_of_bounds)
		TH_LOG("pages_to_scan went from %ld to %ld, bounds %d to %d",
		       s.lo, s.hi, MIN_PAGES, MAX_PAGES);
	TH_LOG("pages_to_scan: from %d, up to %ld, down to %ld in %.1f s",
	       START_PAGES, s.hi, p, now() - s.t0);

	/* Leaving the mode gives pages_to_scan back, reset. */
	ASSERT_EQ(0, write_knob("advisor_mode", "none"));
	EXPECT_EQ(DEFAULT_PAGES, ksm_get("pages_to_scan"));
	EXPECT_EQ(0, ksm_set("pages_to_scan", 1000));
	EXPECT_EQ(1000, ksm_get("pages_to_scan"));
}

TEST_HARNESS_MAIN
