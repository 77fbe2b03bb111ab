// SPDX-License-Identifier: GPL-2.0
/*
 * 98,304 pages on a few KSM pages, rewritten: merged again within two
 * full scans.  One process maps 98,304 pages (384 MiB) of equal content,
 * KSM merges them, then the process writes a new equal content to every
 * page (each write copies the page off its KSM page).  6.12 sees each
 * page changed on its first visit after the write (the checksum differs)
 * and merges it on its second, so two full scans that start after the
 * rewrite merge everything again.
 *
 * "Two full scans" as 6.12's ksm_tests count them: full_scans read with
 * ksmd stopped, then run=1, then full_scans up by two.  A pass under way
 * at the rewrite would count as one while it visited part of the pages
 * before their write: those would need a third pass.  So ksmd is stopped
 * at a pass boundary for the rewrite: pages_to_scan covers a whole pass,
 * a batch starting with a pass runs to its end, and writing run=0 waits
 * for the batch under way.  After the second pass, ksmd sleeps
 * CATCH_MS: run=0 then, and full_scans must still be up by exactly two.
 *
 * What 6.12 counts for n equal pages and max_page_sharing m (ksm_tests'
 * assert_ksm_pages_count()): n / m full KSM pages and one more for the
 * rest, a rest of one page staying unmerged; KSM pages of one content
 * are dups of a chain when there are more than one.  Variants:
 *   m = 98,304, one content:   1 KSM page, pages_sharing 98,303;
 *   m = 98,304, four contents: 4 KSM pages, pages_sharing 98,300;
 *   m = 256, one content:      384 KSM pages, pages_sharing 97,920,
 *                              one chain of 384 dups.
 * pages_volatile is 0: every page is on a KSM page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#define PAGES		98304
#define SEED_OLD	21	/* + i % contents */
#define SEED_NEW	41
#define PASS_PAGES	(4 * PAGES)	/* pages_to_scan: a pass in one batch */
#define CATCH_MS	2000	/* ksmd's sleep while we count passes */
#define MERGE_S		300
#define NEED_KB		(PAGES * 4L + 128 * 1024)	/* 384 MiB + room */

/* What 6.12 counts when its pages are merged (see the top). */
struct expect {
	long shared, sharing, chains, dups;
};

static void expect_of(long n, long mps, int contents, struct expect *e)
{
	long each = n / contents, ksm, merged;

	ksm = each / mps + (each % mps > 1);
	merged = each - (each % mps == 1);
	e->shared = contents * ksm;
	e->sharing = contents * (merged - ksm);
	e->chains = ksm > 1 ? contents : 0;
	e->dups = ksm > 1 ? contents * ksm : 0;
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

static void fill_all(char *p, int contents, unsigned int seed)
{
	long i;

	for (i = 0; i < PAGES; i++)
		fill_page(p + i * page_size(), seed + i % contents);
}

static long holding_all(char *p, int contents, unsigned int seed)
{
	long i, n = 0;

	for (i = 0; i < PAGES; i++)
		n += page_holds(p + i * page_size(), seed + i % contents);
	return n;
}

FIXTURE(remerge) {
	struct ksm_knobs knobs;
	long max_page_sharing, merge_across_nodes;
	char *p;
};

FIXTURE_VARIANT(remerge) {
	long max_page_sharing;
	int contents;
};

FIXTURE_VARIANT_ADD(remerge, one_ksm_page) {
	.max_page_sharing = PAGES,
	.contents = 1,
};

FIXTURE_VARIANT_ADD(remerge, four_ksm_pages) {
	.max_page_sharing = PAGES,
	.contents = 4,
};

FIXTURE_VARIANT_ADD(remerge, default_max_page_sharing) {
	.max_page_sharing = 256,
	.contents = 1,
};

FIXTURE_SETUP(remerge)
{
	self->p = NULL;
	self->max_page_sharing = -1;
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	if (meminfo_kb("MemAvailable") < NEED_KB)
		SKIP(return, "MemAvailable %ld kB, want %ld",
		     meminfo_kb("MemAvailable"), NEED_KB);
	ksm_knobs_save(&self->knobs);
	self->max_page_sharing = ksm_get("max_page_sharing");
	self->merge_across_nodes = ksm_get("merge_across_nodes");
	/* No KSM page left: the layout knobs may change now. */
	ASSERT_EQ(0, ksm_set("run", 2));
	ASSERT_EQ(0, ksm_set("max_page_sharing", variant->max_page_sharing));
	if (self->merge_across_nodes >= 0)
		ASSERT_EQ(0, ksm_set("merge_across_nodes", 1));
	ASSERT_EQ(0, ksm_set("use_zero_pages", 0));
	ASSERT_EQ(0, ksm_set("pages_to_scan", PASS_PAGES));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 10));
	self->p = map_anon(PAGES);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(remerge)
{
	if (self->p)
		munmap(self->p, (size_t)PAGES * page_size());
	if (self->max_page_sharing < 0)
		return;
	/* The layout knobs change only with no KSM page left. */
	ksm_set("run", 2);
	ksm_set("max_page_sharing", self->max_page_sharing);
	if (self->merge_across_nodes >= 0)
		ksm_set("merge_across_nodes", self->merge_across_nodes);
	ksm_knobs_restore(&self->knobs);
}

static bool counters_are(const struct expect *e)
{
	return ksm_get("pages_shared") == e->shared &&
	       ksm_get("pages_sharing") == e->sharing;
}

TEST_F_TIMEOUT(remerge, rewritten_pages_merge_in_two_scans, 900)
{
	int contents = variant->contents;
	long scans, got;
	struct expect e;
	double t0;

	expect_of(PAGES, variant->max_page_sharing, contents, &e);
	TH_LOG("%d pages, %d contents, max_page_sharing %ld",
	       PAGES, contents, variant->max_page_sharing);
	TH_LOG("want shared %ld sharing %ld chains %ld dups %ld",
	       e.shared, e.sharing, e.chains, e.dups);

	fill_all(self->p, contents, SEED_OLD);
	ASSERT_EQ(0, madvise(self->p, (size_t)PAGES * page_size(),
			     MADV_MERGEABLE));
	scans = ksm_get("full_scans");
	t0 = now();
	ASSERT_EQ(0, ksm_set("run", 1));
	ASSERT_TRUE(WAIT_UNTIL(counters_are(&e), MERGE_S))
		TH_LOG("pages_shared %ld, pages_sharing %ld after %d s",
		       ksm_get("pages_shared"), ksm_get("pages_sharing"),
		       MERGE_S);
	TH_LOG("merged in %.1f s, %ld full scans", now() - t0,
	       ksm_get("full_scans") - scans);
	EXPECT_EQ(PAGES, proc_merging_pages(getpid()));

	/* Stopped at the end of the pass under way (see the top). */
	t0 = now();
	ASSERT_EQ(0, ksm_set("run", 0));
	TH_LOG("stopped at a pass end in %.1f s", now() - t0);
	ASSERT_EQ(PAGES, holding_all(self->p, contents, SEED_OLD));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", CATCH_MS));

	t0 = now();
	fill_all(self->p, contents, SEED_NEW);
	TH_LOG("rewrite of %d pages: %.1f s", PAGES, now() - t0);

	scans = ksm_get("full_scans");
	t0 = now();
	ASSERT_EQ(0, ksm_set("run", 1));
	ASSERT_TRUE(WAIT_UNTIL(ksm_get("full_scans") >= scans + 2, MERGE_S))
		TH_LOG("full_scans %ld, want %ld", ksm_get("full_scans"),
		       scans + 2);
	ASSERT_EQ(0, ksm_set("run", 0));
	/* Caught in the sleep after the second pass: no third one begun. */
	ASSERT_EQ(scans + 2, ksm_get("full_scans"));
	TH_LOG("two full scans in %.1f s (with %d ms sleeps)", now() - t0,
	       CATCH_MS);

	got = ksm_get("pages_shared");
	EXPECT_EQ(e.shared, got);
	got = ksm_get("pages_sharing");
	EXPECT_EQ(e.sharing, got);
	EXPECT_EQ(0, ksm_get("pages_volatile"));
	EXPECT_EQ(PAGES, proc_merging_pages(getpid()));
	EXPECT_EQ(e.chains, ksm_get("stable_node_chains"));
	EXPECT_EQ(e.dups, ksm_get("stable_node_dups"));
	EXPECT_EQ(PAGES, holding_all(self->p, contents, SEED_NEW));
}

TEST_HARNESS_MAIN
