/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit tests for the sharers of a stable node (mm/ksm/stable.c): every
 * merged slot points to the sharer entry that names it, through array
 * growth and removals in any order, and the counters follow.  The node
 * has no page here, so it goes with its last sharer.
 */
#ifndef _MM_KSM_TESTS_STABLE_KUNIT_H
#define _MM_KSM_TESTS_STABLE_KUNIT_H

#include <kunit/test.h>
#include <linux/prandom.h>
#include <linux/rmap.h>

#define KSM_TEST_SHARERS	300

/* Every slot of @kmm in [0, @n) that is merged names a sharer of @s. */
static void expect_slots_consistent(struct kunit *test, struct ksm_stable *s,
				    struct ksm_mm *kmm, unsigned int n)
{
	unsigned int i, merged = 0;
	struct ksm_sharer *sh;
	struct ksm_cand cand;

	for (i = 0; i < n; i++) {
		if (ksm_track_load(&kmm->pages, i * PAGE_SIZE, &cand, &sh) !=
		    KSM_MERGED)
			continue;
		merged++;
		KUNIT_EXPECT_PTR_EQ(test, s, sh->stable);
		KUNIT_EXPECT_PTR_EQ(test, kmm, sh->kmm);
		KUNIT_EXPECT_EQ(test, (unsigned long)i * PAGE_SIZE,
				ksm_sharer_addr(sh));
		KUNIT_EXPECT_TRUE(test, sh >= s->sharers &&
				  sh < s->sharers + s->nr);
	}
	KUNIT_EXPECT_EQ(test, s->nr, merged);
}

/* The merged page at @i leaves, as a write would make it; false if lost. */
static bool drop_sharer(struct kunit *test, struct ksm_mm *kmm, unsigned int i)
{
	struct ksm_sharer *sh;
	struct ksm_cand cand;

	if (ksm_track_load(&kmm->pages, i * PAGE_SIZE, &cand, &sh) !=
	    KSM_MERGED) {
		KUNIT_FAIL(test, "slot %u lost", i);
		return false;
	}
	ksm_stable_drop(sh);
	ksm_track_forget(&kmm->pages, i * PAGE_SIZE);
	return true;
}

static void ksm_stable_test_sharers(struct kunit *test)
{
	unsigned long shared, sharing;
	struct anon_vma *anon_vma;
	unsigned int *order, i, j;
	struct mm_struct *mm;
	struct ksm_stable *s;
	struct ksm_mm *kmm;
	struct rnd_state rs;

	kmm = kunit_kzalloc(test, sizeof(*kmm), GFP_KERNEL);
	mm = kunit_kzalloc(test, sizeof(*mm), GFP_KERNEL);
	anon_vma = kunit_kzalloc(test, sizeof(*anon_vma), GFP_KERNEL);
	order = kunit_kcalloc(test, KSM_TEST_SHARERS, sizeof(*order), GFP_KERNEL);
	s = ksm_stable_new();
	KUNIT_ASSERT_TRUE(test, kmm && mm && anon_vma && order && s);
	/*
	 * Never freed: the test holds one reference of its own.  No
	 * assertion while ksm_lock is held: it would end us holding it.
	 */
	atomic_set(&anon_vma->refcount, KSM_TEST_SHARERS + 1);
	kmm->mm = mm;
	xa_init(&kmm->pages);
	/* No page of its own: a pfn whose ->mapping is not this node. */
	s->kpfn = ULONG_MAX;

	mutex_lock(&ksm_lock);
	shared = ksm_stats.pages_shared;
	sharing = ksm_stats.pages_sharing;
	for (i = 0; i < KSM_TEST_SHARERS; i++) {
		if (ksm_track_store_cand(&kmm->pages, i * PAGE_SIZE,
					 (struct ksm_cand) { }, GFP_KERNEL) ||
		    ksm_stable_reserve(s)) {
			KUNIT_FAIL(test, "no memory");
			goto unlock;
		}
		ksm_stable_add(s, kmm, i * PAGE_SIZE, anon_vma, 0);
	}
	KUNIT_EXPECT_EQ(test, KSM_TEST_SHARERS, s->nr);
	KUNIT_EXPECT_EQ(test, shared + 1, ksm_stats.pages_shared);
	KUNIT_EXPECT_EQ(test, sharing + KSM_TEST_SHARERS - 1,
			ksm_stats.pages_sharing);
	KUNIT_EXPECT_EQ(test, (unsigned long)KSM_TEST_SHARERS,
			mm->ksm_merging_pages);
	expect_slots_consistent(test, s, kmm, KSM_TEST_SHARERS);

	/* Leave in a random order, as writes break sharing. */
	prandom_seed_state(&rs, 12);
	for (i = 0; i < KSM_TEST_SHARERS; i++)
		order[i] = i;
	for (i = KSM_TEST_SHARERS - 1; i > 0; i--) {
		j = prandom_u32_state(&rs) % (i + 1);	/* swap() reads it twice */
		swap(order[i], order[j]);
	}
	for (j = 0; j < KSM_TEST_SHARERS - 1; j++) {
		if (!drop_sharer(test, kmm, order[j]))
			goto unlock;
		if (j % 37 == 0)
			expect_slots_consistent(test, s, kmm, KSM_TEST_SHARERS);
	}
	expect_slots_consistent(test, s, kmm, KSM_TEST_SHARERS);
	KUNIT_EXPECT_EQ(test, 1U, s->nr);
	KUNIT_EXPECT_EQ(test, shared + 1, ksm_stats.pages_shared);
	KUNIT_EXPECT_EQ(test, sharing, ksm_stats.pages_sharing);
	/* The last sharer takes the pageless node with it. */
	if (!drop_sharer(test, kmm, order[KSM_TEST_SHARERS - 1]))
		goto unlock;
	KUNIT_EXPECT_EQ(test, shared, ksm_stats.pages_shared);
	KUNIT_EXPECT_EQ(test, 0UL, mm->ksm_merging_pages);
unlock:
	mutex_unlock(&ksm_lock);
	KUNIT_EXPECT_EQ(test, 1, atomic_read(&anon_vma->refcount));
	KUNIT_EXPECT_TRUE(test, xa_empty(&kmm->pages));
	xa_destroy(&kmm->pages);
}

static struct kunit_case ksm_stable_test_cases[] = {
	KUNIT_CASE(ksm_stable_test_sharers),
	{}
};

static struct kunit_suite ksm_stable_test_suite = {
	.name = "ksm_stable",
	.test_cases = ksm_stable_test_cases,
};

kunit_test_suite(ksm_stable_test_suite);

#endif /* _MM_KSM_TESTS_STABLE_KUNIT_H */
