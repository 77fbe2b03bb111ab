/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit tests for mm/ksm/track.c and the candidate encoding in ksm.h:
 * every field survives a round trip through an xarray slot, fields clamp
 * rather than spill into each other, the three slot states stay apart; and
 * the volatility rules: a page settles when unchanged, one that changes or
 * was written to after merging waits longer, smart scan backs off.
 */
#ifndef _MM_KSM_TESTS_TRACK_KUNIT_H
#define _MM_KSM_TESTS_TRACK_KUNIT_H

#include <kunit/test.h>
#include <linux/prandom.h>
#include <linux/slab.h>

static void expect_same_cand(struct kunit *test, struct ksm_cand want,
			     struct ksm_cand got)
{
	KUNIT_EXPECT_EQ(test, want.sig, got.sig);
	KUNIT_EXPECT_EQ(test, want.age, got.age);
	KUNIT_EXPECT_EQ(test, want.skip, got.skip);
	KUNIT_EXPECT_EQ(test, want.flips, got.flips);
	KUNIT_EXPECT_EQ(test, want.breaks, got.breaks);
	KUNIT_EXPECT_EQ(test, want.unshared, got.unshared);
}

static void ksm_track_test_round_trip(struct kunit *test)
{
	struct rnd_state rs;
	unsigned int n;

	prandom_seed_state(&rs, 56);
	for (n = 0; n < 1000; n++) {
		struct ksm_cand c = {
			.sig = prandom_u32_state(&rs) &
			       (BIT(KSM_CAND_SIG_BITS) - 1),
			.age = prandom_u32_state(&rs) % (KSM_CAND_AGE_MAX + 1),
			.skip = prandom_u32_state(&rs) % (KSM_CAND_SKIP_MAX + 1),
			.flips = prandom_u32_state(&rs) % (KSM_CAND_FLIPS_MAX + 1),
			.breaks = prandom_u32_state(&rs) %
				  (KSM_CAND_BREAKS_MAX + 1),
			.unshared = prandom_u32_state(&rs) & 1,
		};
		void *entry = ksm_cand_entry(c);

		KUNIT_EXPECT_TRUE(test, xa_is_value(entry));
		KUNIT_EXPECT_FALSE(test, xa_is_internal(entry));
		expect_same_cand(test, c, ksm_entry_cand(entry));
	}
}

static void ksm_track_test_fields_clamp(struct kunit *test)
{
	struct ksm_cand c = {
		.sig = U32_MAX, .age = 200, .skip = 99, .flips = 50,
		.breaks = 77,
	};
	struct ksm_cand got = ksm_entry_cand(ksm_cand_entry(c));

	KUNIT_EXPECT_EQ(test, (u32)(BIT(KSM_CAND_SIG_BITS) - 1), got.sig);
	KUNIT_EXPECT_EQ(test, KSM_CAND_AGE_MAX, (unsigned int)got.age);
	KUNIT_EXPECT_EQ(test, KSM_CAND_SKIP_MAX, (unsigned int)got.skip);
	KUNIT_EXPECT_EQ(test, KSM_CAND_FLIPS_MAX, (unsigned int)got.flips);
	KUNIT_EXPECT_EQ(test, KSM_CAND_BREAKS_MAX, (unsigned int)got.breaks);

	/* An all-zero candidate is still a slot, not an empty one. */
	c = (struct ksm_cand) { };
	KUNIT_EXPECT_NOT_NULL(test, ksm_cand_entry(c));
}

static void ksm_track_test_sig_fold(struct kunit *test)
{
	u64 sig = 0x0123456789abcdefULL;
	unsigned int bit;

	/* Flipping any one bit of the full signature shows in the kept part. */
	for (bit = 0; bit < 64; bit++) {
		if (bit % 32 >= KSM_CAND_SIG_BITS)
			continue;
		KUNIT_EXPECT_NE_MSG(test, ksm_sig_fold(sig),
				    ksm_sig_fold(sig ^ BIT_ULL(bit)), "bit %u", bit);
	}
}

static void ksm_track_test_slot_states(struct kunit *test)
{
	unsigned long addr = TASK_SIZE_MAX - PAGE_SIZE, other = 0x7f0000001000UL;
	struct ksm_cand c = { .sig = 42, .age = 3, .skip = 1 }, got;
	struct ksm_sharer *stable, *node;
	struct xarray pages;

	xa_init(&pages);	/* on the stack: lockdep needs a runtime init */
	/* Any allocation will do: the sharer is only pointed at here. */
	node = kunit_kzalloc(test, sizeof(*node), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, node);

	KUNIT_EXPECT_EQ(test, KSM_UNTRACKED,
			ksm_track_load(&pages, addr, &got, &stable));
	KUNIT_ASSERT_EQ(test, 0, ksm_track_store_cand(&pages, addr, c, GFP_KERNEL));
	KUNIT_EXPECT_EQ(test, KSM_CANDIDATE,
			ksm_track_load(&pages, addr, &got, &stable));
	expect_same_cand(test, c, got);
	/* Addresses within one page share a slot; the next page does not. */
	KUNIT_EXPECT_EQ(test, KSM_CANDIDATE,
			ksm_track_load(&pages, addr + 123, &got, &stable));
	KUNIT_EXPECT_EQ(test, KSM_UNTRACKED,
			ksm_track_load(&pages, addr - PAGE_SIZE, &got, &stable));

	KUNIT_ASSERT_EQ(test, 0,
			ksm_track_store_cand(&pages, other, c, GFP_KERNEL));
	ksm_track_store_sharer(&pages, other, node);
	KUNIT_EXPECT_EQ(test, KSM_MERGED,
			ksm_track_load(&pages, other, &got, &stable));
	KUNIT_EXPECT_PTR_EQ(test, node, stable);

	ksm_track_forget(&pages, addr);
	KUNIT_EXPECT_EQ(test, KSM_UNTRACKED,
			ksm_track_load(&pages, addr, &got, &stable));
	ksm_track_forget(&pages, other);
	KUNIT_EXPECT_TRUE(test, xa_empty(&pages));
	xa_destroy(&pages);
}

/* pages_unshared follows the slots flagged as in the unstable tree. */
static void ksm_track_test_unshared_counts(struct kunit *test)
{
	struct ksm_cand in = { .sig = 7, .unshared = true }, out = { .sig = 7 };
	struct ksm_sharer *sh;
	unsigned long before;
	struct xarray pages;

	sh = kunit_kzalloc(test, sizeof(*sh), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, sh);
	xa_init(&pages);
	/* Expectations only: an assertion would end us holding ksm_lock. */
	mutex_lock(&ksm_lock);
	before = ksm_stats.pages_unshared;
	KUNIT_EXPECT_EQ(test, 0, ksm_track_store_cand(&pages, 0, in, GFP_KERNEL));
	KUNIT_EXPECT_EQ(test, 0,
			ksm_track_store_cand(&pages, PAGE_SIZE, in, GFP_KERNEL));
	KUNIT_EXPECT_EQ(test, before + 2, ksm_stats.pages_unshared);
	/* Flagged again: no change. */
	KUNIT_EXPECT_EQ(test, 0, ksm_track_store_cand(&pages, 0, in, GFP_KERNEL));
	KUNIT_EXPECT_EQ(test, before + 2, ksm_stats.pages_unshared);
	/* Visited, merged, forgotten: each leaves the count. */
	KUNIT_EXPECT_EQ(test, 0, ksm_track_store_cand(&pages, 0, out, GFP_KERNEL));
	KUNIT_EXPECT_EQ(test, before + 1, ksm_stats.pages_unshared);
	ksm_track_store_sharer(&pages, PAGE_SIZE, sh);
	KUNIT_EXPECT_EQ(test, before, ksm_stats.pages_unshared);
	KUNIT_EXPECT_EQ(test, 0,
			ksm_track_store_cand(&pages, PAGE_SIZE, in, GFP_KERNEL));
	ksm_track_forget(&pages, PAGE_SIZE);
	ksm_track_forget(&pages, 0);
	KUNIT_EXPECT_EQ(test, before, ksm_stats.pages_unshared);
	mutex_unlock(&ksm_lock);
	KUNIT_EXPECT_TRUE(test, xa_empty(&pages));
	xa_destroy(&pages);
}

/* A page is ready only once its signature held across a visit. */
static void ksm_track_test_settles_when_unchanged(struct kunit *test)
{
	/* As the first visit leaves it. */
	struct ksm_cand c = { .sig = 6 };

	KUNIT_EXPECT_TRUE(test, ksm_cand_settle(&c, 6, false));
	KUNIT_EXPECT_EQ(test, 1u, c.age);
	KUNIT_EXPECT_TRUE(test, ksm_cand_settle(&c, 6, false));
	KUNIT_EXPECT_EQ(test, 2u, c.age);
	/* A change starts it over: ready again at the next visit, as 6.12. */
	KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, 7, false));
	KUNIT_EXPECT_EQ(test, 7u, c.sig);
	KUNIT_EXPECT_EQ(test, 0u, c.age);
	KUNIT_EXPECT_EQ(test, 1u, c.flips);
	KUNIT_EXPECT_TRUE(test, ksm_cand_settle(&c, 7, false));
	/* Two changes in a row: it must hold still twice. */
	KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, 8, false));
	KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, 9, false));
	KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, 9, false));
	KUNIT_EXPECT_TRUE(test, ksm_cand_settle(&c, 9, false));
	KUNIT_EXPECT_FALSE(test, ksm_cand_skip(&c, false));
}

/* Smart scan: a page left alone is visited less and less often. */
static void ksm_track_test_smart_scan_backs_off(struct kunit *test)
{
	struct ksm_cand c = { .sig = 9 };
	unsigned int visits = 0, hashed = 0, gap = 0, last_gap = 0;

	for (visits = 0; visits < 400; visits++) {
		if (ksm_cand_skip(&c, true)) {
			gap++;
			continue;
		}
		hashed++;
		/* Gaps between hashing visits never shrink, and are bounded. */
		KUNIT_EXPECT_GE(test, gap, last_gap);
		KUNIT_EXPECT_LE(test, gap, (unsigned int)KSM_CAND_SKIP_MAX);
		last_gap = gap;
		gap = 0;
		KUNIT_EXPECT_TRUE(test, ksm_cand_settle(&c, 9, true));
	}
	KUNIT_EXPECT_EQ(test, (unsigned int)KSM_CAND_SKIP_MAX, last_gap);
	KUNIT_EXPECT_LT(test, hashed, visits / 8);
	/* The first visits skip nothing: two scans still merge new twins. */
	c = (struct ksm_cand) { .sig = 1 };
	KUNIT_EXPECT_TRUE(test, ksm_cand_settle(&c, 1, true));
	KUNIT_EXPECT_FALSE(test, ksm_cand_skip(&c, true));
	/* A change ends the back-off at once. */
	c.skip = 4;
	c.age = 20;
	KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, 2, true));
	KUNIT_EXPECT_FALSE(test, ksm_cand_skip(&c, true));
	/* Without smart scan, a pending skip is ignored. */
	c.skip = 4;
	KUNIT_EXPECT_FALSE(test, ksm_cand_skip(&c, false));
}

/* A page that changes at every visit is never ready, and seldom hashed. */
static void ksm_track_test_volatile_page_backs_off(struct kunit *test)
{
	struct ksm_cand c = { };
	unsigned int visits, hashed = 0;

	for (visits = 0; visits < 200; visits++) {
		if (ksm_cand_skip(&c, true))
			continue;
		hashed++;
		KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, visits + 1, true));
	}
	KUNIT_EXPECT_EQ(test, KSM_CAND_FLIPS_MAX, (unsigned int)c.flips);
	KUNIT_EXPECT_LT(test, hashed, visits / 8);
	/* Without smart scan it is hashed every time, and still never ready. */
	c = (struct ksm_cand) { };
	for (visits = 0; visits < 20; visits++) {
		KUNIT_EXPECT_FALSE(test, ksm_cand_skip(&c, false));
		KUNIT_EXPECT_FALSE(test, ksm_cand_settle(&c, visits + 1, false));
	}
}

/* Visits a page that broke with @hist must hold still before it merges. */
static unsigned int broken_wait(struct ksm_cand *c, unsigned int hist)
{
	unsigned int held = 0;

	ksm_cand_broken(c, 42, false, hist);
	while (!ksm_cand_settle(c, 42, false) && held < 20)
		held++;
	return held;
}

/*
 * A page written once after it merged merges again at its next unchanged
 * visit, as 6.12's pages do; one whose merges keep breaking waits longer
 * each time, until merges that last make up for it.
 */
static void ksm_track_test_broken_merge_waits(struct kunit *test)
{
	unsigned int hist = 0, held, last = 0, i;
	struct ksm_cand c;

	KUNIT_EXPECT_EQ(test, 0u, broken_wait(&c, hist));
	for (i = 0; i < 2; i++) {
		hist = ksm_cand_hist(c);
		held = broken_wait(&c, hist);
		KUNIT_EXPECT_GT(test, held, last);
		last = held;
	}
	KUNIT_EXPECT_LT(test, last, 20u);
	/* Merges that last: each visit still merged forgives one break. */
	hist = ksm_cand_hist(c);
	for (i = 0; i < KSM_CAND_BREAKS_MAX; i++)
		hist = ksm_hist_steady(hist);
	KUNIT_EXPECT_EQ(test, 0u, hist >> KSM_CAND_FLIPS_BITS);
	/* With smart scan a page that keeps breaking is also skipped a while. */
	ksm_cand_broken(&c, 42, true, ksm_cand_hist(c));
	KUNIT_EXPECT_TRUE(test, ksm_cand_skip(&c, true));
}

static struct kunit_case ksm_track_test_cases[] = {
	KUNIT_CASE(ksm_track_test_round_trip),
	KUNIT_CASE(ksm_track_test_fields_clamp),
	KUNIT_CASE(ksm_track_test_sig_fold),
	KUNIT_CASE(ksm_track_test_slot_states),
	KUNIT_CASE(ksm_track_test_unshared_counts),
	KUNIT_CASE(ksm_track_test_settles_when_unchanged),
	KUNIT_CASE(ksm_track_test_smart_scan_backs_off),
	KUNIT_CASE(ksm_track_test_volatile_page_backs_off),
	KUNIT_CASE(ksm_track_test_broken_merge_waits),
	{},
};

static struct kunit_suite ksm_track_test_suite = {
	.name = "ksm_track",
	.test_cases = ksm_track_test_cases,
};

kunit_test_suite(ksm_track_test_suite);

#endif /* _MM_KSM_TESTS_TRACK_KUNIT_H */
