// SPDX-License-Identifier: GPL-2.0
/*
 * Twins of one KSM page with max_page_sharing=2, counted as 6.12 counts
 * them.  Four processes each hold 64 pages of content A and one of
 * content B.  6.12 merges a pass in scan order: a process's A pages pair
 * up among themselves, (0, 1), (2, 3), ..., each pair a KSM page that is
 * full at once; B pairs across processes, (P0, P1) and (P2, P3).  Equal
 * KSM pages hang as dups off one chain per content in the stable tree:
 *
 *   pages_shared 130, pages_sharing 130 (128 A pages + 2 B pages, each
 *   mapped twice), stable_node_chains 2 (A, B), stable_node_dups 130.
 *
 * Then half the sharers go away, two ways:
 * - P2 and P3 exit: their 64 A pages and their B page are freed whole.
 *   6.12 drops the stale dups, and the B chain, one live dup left,
 *   collapses into a plain stable node: the 130 sharers left sit on 65
 *   KSM pages (65, 65, 1 chain, 64 dups).
 * - every process writes its odd A pages (unique contents): each A KSM
 *   page keeps one sharer.  6.12 never moves a sharer off its KSM page
 *   (cmp_and_merge_page() returns at once for a page already in the
 *   stable tree), so the 128 stay KSM pages of one: (130, 2, 2, 130).
 *   A KSM that packs twins (ours, every stable_node_chains_prune_millisecs)
 *   moves them onto 64 pages of two: (66, 66, 2, 66).  Either way 132
 *   pages stay merged, and no more KSM pages than 6.12's remain.
 *   Written back to A, the odd pages go to the KSM pages with room
 *   (chain_prune() picks a dup below max_page_sharing) rather than
 *   pairing up on new ones: (130, 130, 2, 130) again.
 * Counters must hold for two more full scans and three chain prune
 * periods (stable_node_chains_prune_millisecs, set to 100), and every
 * page keep its data.
 *
 * Each process also holds two probe pages, lower and higher than any
 * other content: alone, they search the stable tree on every pass, which
 * walks both chains (root and the child on their side) and so prunes
 * stale dups and collapses chains when nothing else would.  smart_scan is
 * off so that they do so every pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#define CHILDREN	4
#define A_PAGES		64	/* even: pairs form within a process */
#define B_PAGE		A_PAGES
#define LOW_PAGE	(A_PAGES + 1)
#define HIGH_PAGE	(A_PAGES + 2)
#define PAGES		(A_PAGES + 3)
#define SEED_A		11
#define SEED_B		12
#define SEED_UNIQUE	1000	/* + child * A_PAGES + page */
#define MPS		2
#define PRUNE_MS	100
#define WAIT_S		60

/* What 6.12 counts: KSM pages, further mappings, chains, dups. */
#define ALL_SHARED	(CHILDREN * A_PAGES / 2 + CHILDREN / 2)
#define HALF_SHARED	(CHILDREN / 2 * A_PAGES / 2 + 1)
#define MERGED_EACH	(A_PAGES + 1)	/* ksm_merging_pages of a process */
#define HALF_MERGED	(A_PAGES / 2 + 1)
/* Twins packed: the 128 lone A sharers on 64 pages, B's two pages. */
#define PACKED_SHARED	(CHILDREN * A_PAGES / 2 / MPS + CHILDREN / 2)

struct counts {
	long shared, sharing, chains, dups;
};

static void counts_read(struct counts *c)
{
	c->shared = ksm_get("pages_shared");
	c->sharing = ksm_get("pages_sharing");
	c->chains = ksm_get("stable_node_chains");
	c->dups = ksm_get("stable_node_dups");
}

static bool counts_are(long shared, long sharing, long chains, long dups)
{
	struct counts c;

	counts_read(&c);
	return c.shared == shared && c.sharing == sharing &&
	       c.chains == chains && c.dups == dups;
}

/*
 * Wait for the four counters with a bound, then check that they hold for
 * two more full scans and three chain prune periods.  The log tells what
 * was seen when it failed.
 */
static void expect_counts(struct __test_metadata *_metadata, long shared,
			  long sharing, long chains, long dups)
{
	double t0 = now();
	struct counts c;
	long scans;
	bool ok;

	ok = WAIT_UNTIL(counts_are(shared, sharing, chains, dups), WAIT_S);
	counts_read(&c);
	EXPECT_TRUE(ok)
		TH_LOG("want shared %ld sharing %ld chains %ld dups %ld; got %ld %ld %ld %ld",
		       shared, sharing, chains, dups, c.shared, c.sharing,
		       c.chains, c.dups);
	if (!ok)
		return;
	TH_LOG("shared %ld sharing %ld chains %ld dups %ld after %.3f s",
	       shared, sharing, chains, dups, now() - t0);
	/* Two full scans and three chain prune periods later, the same. */
	scans = ksm_get("full_scans") + 2;
	t0 = now() + 3 * PRUNE_MS / 1000.0;
	EXPECT_TRUE(WAIT_UNTIL(ksm_get("full_scans") >= scans && now() >= t0,
			       WAIT_S));
	counts_read(&c);
	EXPECT_TRUE(counts_are(shared, sharing, chains, dups))
		TH_LOG("two scans later: %ld %ld %ld %ld", c.shared,
		       c.sharing, c.chains, c.dups);
}

/*
 * Wait until the counters hold still for two full scans and three chain
 * prune periods, with a bound; *c gets them.
 */
static bool counts_settle(struct counts *c)
{
	double end = now() + WAIT_S, t0;
	struct counts d;
	long scans;

	counts_read(c);
	while (now() < end) {
		scans = ksm_get("full_scans") + 2;
		t0 = now() + 3 * PRUNE_MS / 1000.0;
		if (!WAIT_UNTIL(ksm_get("full_scans") >= scans && now() >= t0,
				WAIT_S))
			return false;
		counts_read(&d);
		if (!memcmp(&d, c, sizeof(d)))
			return true;
		*c = d;
	}
	return false;
}

/* Probes: below every filled page (it starts 00 00 00 00 nn), above all. */
static void fill_low(char *page, int child)
{
	memset(page, 0, page_size());
	page[page_size() - 1] = child + 1;
}

static void fill_high(char *page, int child)
{
	memset(page, 0xff, page_size());
	page[page_size() - 1] = child;
}

static bool holds_bytes(const char *page, int fill, int last)
{
	long i;

	for (i = 0; i < page_size() - 1; i++)
		if (page[i] != (char)fill)
			return false;
	return page[i] == (char)last;
}

/* Child @idx's page @i, with its odd A pages written (@odd_unique) or not. */
static bool child_page_ok(const char *p, int idx, int i, bool odd_unique)
{
	const char *page = p + i * page_size();

	if (i < A_PAGES)
		return page_holds(page, odd_unique && i % 2 ?
				  SEED_UNIQUE + idx * A_PAGES + i : SEED_A);
	if (i == B_PAGE)
		return page_holds(page, SEED_B);
	if (i == LOW_PAGE)
		return holds_bytes(page, 0, idx + 1);
	return holds_bytes(page, 0xff, idx);
}

/*
 * A child: its pages, then commands from @cmd, each acknowledged on @ack:
 * 'w' writes its odd A pages with contents of their own, 'a' writes them
 * back to A, 'c' checks every page and exits with the number of bad ones.
 * EOF (the test is gone) ends it.
 */
static void child_main(int idx, int cmd, int ack)
{
	bool odd_unique = false;
	int i, bad;
	char *p, c;

	p = map_anon(PAGES);
	if (!p)
		_exit(101);
	for (i = 0; i < A_PAGES; i++)
		fill_page(p + i * page_size(), SEED_A);
	fill_page(p + B_PAGE * page_size(), SEED_B);
	fill_low(p + LOW_PAGE * page_size(), idx);
	fill_high(p + HIGH_PAGE * page_size(), idx);
	if (madvise(p, PAGES * page_size(), MADV_MERGEABLE))
		_exit(102);
	if (write(ack, "r", 1) != 1)
		_exit(103);
	while (read(cmd, &c, 1) == 1) {
		switch (c) {
		case 'w':
		case 'a':
			odd_unique = c == 'w';
			for (i = 1; i < A_PAGES; i += 2)
				fill_page(p + i * page_size(), odd_unique ?
					  SEED_UNIQUE + idx * A_PAGES + i :
					  SEED_A);
			break;
		case 'c':
			for (bad = 0, i = 0; i < PAGES; i++)
				bad += !child_page_ok(p, idx, i, odd_unique);
			_exit(bad > 100 ? 100 : bad);
		}
		if (write(ack, &c, 1) != 1)
			_exit(104);
	}
	_exit(105);
}

/* The children, and the two ends of their pipes that the test holds. */
struct kids {
	pid_t pid[CHILDREN];
	int cmd[CHILDREN], ack[CHILDREN];
};

FIXTURE(twins) {
	struct ksm_knobs knobs;
	long max_page_sharing, prune_ms, smart_scan, merge_across_nodes;
	struct kids k;
};

FIXTURE_SETUP(twins)
{
	int i, j, c2p[2], p2c[2];
	char c;

	for (i = 0; i < CHILDREN; i++) {
		self->k.pid[i] = 0;
		self->k.cmd[i] = -1;
		self->k.ack[i] = -1;
	}
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	ksm_knobs_save(&self->knobs);
	self->max_page_sharing = ksm_get("max_page_sharing");
	self->prune_ms = ksm_get("stable_node_chains_prune_millisecs");
	self->smart_scan = ksm_get("smart_scan");
	self->merge_across_nodes = ksm_get("merge_across_nodes");
	/* No KSM page left: the layout knobs may change now. */
	ASSERT_EQ(0, ksm_set("run", 2));
	ASSERT_EQ(0, ksm_set("max_page_sharing", MPS));
	ASSERT_EQ(0, ksm_set("stable_node_chains_prune_millisecs", PRUNE_MS));
	ASSERT_EQ(0, ksm_set("smart_scan", 0));
	if (self->merge_across_nodes >= 0)
		ASSERT_EQ(0, ksm_set("merge_across_nodes", 1));
	ASSERT_EQ(0, ksm_set("use_zero_pages", 0));
	ASSERT_EQ(0, ksm_set("pages_to_scan", 1000));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 10));

	/* Registered with ksmd stopped: scanned in this order, P0 first. */
	for (i = 0; i < CHILDREN; i++) {
		ASSERT_EQ(0, pipe(p2c));
		ASSERT_EQ(0, pipe(c2p));
		self->k.pid[i] = fork();
		ASSERT_GE(self->k.pid[i], 0);
		if (!self->k.pid[i]) {
			for (j = 0; j < i; j++) {
				close(self->k.cmd[j]);
				close(self->k.ack[j]);
			}
			close(p2c[1]);
			close(c2p[0]);
			child_main(i, p2c[0], c2p[1]);
		}
		close(p2c[0]);
		close(c2p[1]);
		self->k.cmd[i] = p2c[1];
		self->k.ack[i] = c2p[0];
		ASSERT_EQ(1, read(self->k.ack[i], &c, 1));
		ASSERT_EQ('r', c);
	}
	ASSERT_EQ(0, ksm_set("run", 1));
}

FIXTURE_TEARDOWN(twins)
{
	int i;

	for (i = 0; i < CHILDREN; i++) {
		if (self->k.cmd[i] >= 0)
			close(self->k.cmd[i]);
		if (self->k.ack[i] >= 0)
			close(self->k.ack[i]);
		if (self->k.pid[i] > 0) {
			kill(self->k.pid[i], SIGKILL);
			waitpid(self->k.pid[i], NULL, 0);
		}
	}
	/* The layout knobs change only with no KSM page left. */
	ksm_set("run", 2);
	if (self->max_page_sharing > 0)
		ksm_set("max_page_sharing", self->max_page_sharing);
	if (self->prune_ms >= 0)
		ksm_set("stable_node_chains_prune_millisecs", self->prune_ms);
	if (self->smart_scan >= 0)
		ksm_set("smart_scan", self->smart_scan);
	if (self->merge_across_nodes >= 0)
		ksm_set("merge_across_nodes", self->merge_across_nodes);
	ksm_knobs_restore(&self->knobs);
}

/* Send @c to child @i and wait for its acknowledgment: 0 or -1. */
static int child_do(struct kids *k, int i, char c)
{
	char r;

	if (write(k->cmd[i], &c, 1) != 1)
		return -1;
	return read(k->ack[i], &r, 1) == 1 && r == c ? 0 : -1;
}

/* Child @i checks its pages and exits: how many were bad, or -1. */
static int child_check(struct kids *k, int i)
{
	int status;
	char c = 'c';

	if (write(k->cmd[i], &c, 1) != 1 ||
	    waitpid(k->pid[i], &status, 0) != k->pid[i])
		return -1;
	k->pid[i] = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Every process merged, as 6.12 pairs them: see the top of the file. */
static void all_merged(struct __test_metadata *_metadata, struct kids *k)
{
	int i;

	expect_counts(_metadata, ALL_SHARED, ALL_SHARED, 2, ALL_SHARED);
	for (i = 0; i < CHILDREN; i++)
		EXPECT_EQ(MERGED_EACH, proc_merging_pages(k->pid[i]))
			TH_LOG("child %d", i);
}

TEST_F_TIMEOUT(twins, half_the_sharers_exit, 300)
{
	int i;

	all_merged(_metadata, &self->k);
	/* P2 and P3 go, checking their pages first. */
	for (i = CHILDREN / 2; i < CHILDREN; i++)
		EXPECT_EQ(0, child_check(&self->k, i)) TH_LOG("child %d", i);
	/* The B chain collapses: one chain (A) of 64 dups, B a plain node. */
	expect_counts(_metadata, HALF_SHARED, HALF_SHARED, 1, HALF_SHARED - 1);
	for (i = 0; i < CHILDREN / 2; i++) {
		EXPECT_EQ(MERGED_EACH, proc_merging_pages(self->k.pid[i]))
			TH_LOG("child %d", i);
		EXPECT_EQ(0, child_check(&self->k, i)) TH_LOG("child %d", i);
	}
}

TEST_F_TIMEOUT(twins, half_the_sharers_write, 300)
{
	struct counts c;
	int i;

	all_merged(_metadata, &self->k);
	for (i = 0; i < CHILDREN; i++)
		ASSERT_EQ(0, child_do(&self->k, i, 'w')) TH_LOG("child %d", i);
	/*
	 * Every A page keeps its even sharer, alone as in 6.12 or packed
	 * two to a page; B is untouched.  Either way 132 pages stay merged.
	 */
	ASSERT_TRUE(counts_settle(&c))
		TH_LOG("still moving: %ld %ld %ld %ld", c.shared, c.sharing,
		       c.chains, c.dups);
	TH_LOG("after the writes: shared %ld sharing %ld chains %ld dups %ld",
	       c.shared, c.sharing, c.chains, c.dups);
	EXPECT_TRUE((c.shared == ALL_SHARED && c.sharing == CHILDREN / 2) ||
		    (c.shared == PACKED_SHARED && c.sharing == PACKED_SHARED));
	EXPECT_EQ(ALL_SHARED + CHILDREN / 2, c.shared + c.sharing);
	EXPECT_EQ(2, c.chains);
	EXPECT_EQ(c.shared, c.dups);
	for (i = 0; i < CHILDREN; i++)
		EXPECT_EQ(HALF_MERGED, proc_merging_pages(self->k.pid[i]))
			TH_LOG("child %d", i);

	/* Back to A: the odd pages fill the A pages with room, no new one. */
	for (i = 0; i < CHILDREN; i++)
		ASSERT_EQ(0, child_do(&self->k, i, 'a')) TH_LOG("child %d", i);
	expect_counts(_metadata, ALL_SHARED, ALL_SHARED, 2, ALL_SHARED);
	for (i = 0; i < CHILDREN; i++) {
		EXPECT_EQ(MERGED_EACH, proc_merging_pages(self->k.pid[i]))
			TH_LOG("child %d", i);
		EXPECT_EQ(0, child_check(&self->k, i)) TH_LOG("child %d", i);
	}
}

TEST_HARNESS_MAIN
