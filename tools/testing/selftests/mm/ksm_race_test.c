// SPDX-License-Identifier: GPL-2.0
/*
 * Writes racing ksmd: processes keep writing to pages that ksmd keeps
 * merging, and turn written pages back into twins so that they merge
 * again in quiet spells.  No write may ever be lost or seen by another process, and
 * merging must go on meanwhile.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#define WRITERS 4
#define PAGES 256
#define RUN_S 8
#define COMMON 0xa5

FIXTURE(race) {
	struct ksm_knobs knobs;
};

FIXTURE_SETUP(race)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	/* Start from nothing merged: global counters must mean us. */
	ASSERT_EQ(0, ksm_flat_out(&self->knobs));
}

FIXTURE_TEARDOWN(race)
{
	ksm_knobs_restore(&self->knobs);
}

/* What a writer put in one of its pages: a word at an offset, or nothing. */
struct mark {
	unsigned long word;	/* 0: the page holds COMMON everywhere */
	unsigned int off;	/* in words */
};

/* Does @page hold COMMON, but for @m? */
static bool page_is(const unsigned long *page, const struct mark *m)
{
	unsigned long common;
	size_t i, words = page_size() / sizeof(long);

	memset(&common, COMMON, sizeof(common));
	for (i = 0; i < words; i++) {
		unsigned long want = m->word && i == m->off ? m->word : common;

		if (page[i] != want)
			return false;
	}
	return true;
}

/*
 * One writer: marks and restores its pages at random for RUN_S seconds,
 * checking each page it touches, and all of them now and then.  Exits
 * with the number of pages found wrong (capped).
 */
static int writer(int id)
{
	size_t words = page_size() / sizeof(long);
	struct mark marks[PAGES] = { };
	unsigned int seed = 1234 + id;
	unsigned long seq = 0;
	int bad = 0, i, round;
	unsigned long *p;
	double start, end;

	p = mmap(NULL, PAGES * page_size(), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 100;
	memset(p, COMMON, PAGES * page_size());
	if (madvise(p, PAGES * page_size(), MADV_MERGEABLE))
		return 101;

	start = now();
	end = start + RUN_S;
	for (round = 0; now() < end && bad < 50; round++) {
		unsigned long *page;
		struct mark *m;

		/*
		 * Quiet for 0.4 s of every second: pages that held still
		 * merge, and the next burst of writes races with that.
		 */
		if ((long)((now() - start) * 10) % 10 >= 6) {
			usleep(20000);
			for (i = 0; i < PAGES; i++)
				bad += !page_is(p + i * words, &marks[i]);
			continue;
		}
		i = rand_r(&seed) % PAGES;
		page = p + i * words;
		m = &marks[i];
		if (!page_is(page, m))
			bad++;
		if (m->word) {
			/* Back to a twin of every other page: it may merge. */
			page[m->off] = page[(m->off + 1) % words];
			m->word = 0;
		} else {
			m->off = rand_r(&seed) % words;
			m->word = (unsigned long)id << 56 | ++seq;
			page[m->off] = m->word;
		}
		if (!page_is(page, m))
			bad++;
		/* Let ksmd merge what was restored. */
		if (round % 64 == 0) {
			usleep(2000);
			for (i = 0; i < PAGES; i++)
				bad += !page_is(p + i * words, &marks[i]);
		}
	}
	for (i = 0; i < PAGES; i++)
		bad += !page_is(p + i * words, &marks[i]);
	return bad > 99 ? 99 : bad;
}

TEST_F_TIMEOUT(race, writes_survive_merging, 120)
{
	long sharing, most = 0, scans0 = ksm_get("full_scans");
	int i, left = WRITERS, status[WRITERS];
	pid_t pids[WRITERS];

	for (i = 0; i < WRITERS; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (!pids[i])
			_exit(writer(i));
	}
	/* While they write: merging must happen, and go on. */
	while (left) {
		for (i = 0; i < WRITERS; i++)
			if (pids[i] &&
			    waitpid(pids[i], &status[i], WNOHANG) == pids[i]) {
				pids[i] = 0;
				left--;
			}
		sharing = ksm_get("pages_sharing");
		if (sharing > most)
			most = sharing;
		usleep(20000);
	}
	for (i = 0; i < WRITERS; i++) {
		EXPECT_TRUE(WIFEXITED(status[i]));
		EXPECT_EQ(0, WEXITSTATUS(status[i]))
			TH_LOG("writer %d found %d pages wrong", i,
			       WEXITSTATUS(status[i]));
	}
	TH_LOG("most pages_sharing %ld, %ld full scans", most,
	       ksm_get("full_scans") - scans0);
	EXPECT_GT(most, WRITERS * PAGES / 4);
	EXPECT_GT(ksm_get("full_scans") - scans0, 4);
}

TEST_HARNESS_MAIN
