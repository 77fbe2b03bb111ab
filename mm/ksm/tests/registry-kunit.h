/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit tests for the scan cursor of mm/ksm/registry.c: a pass visits every
 * listed mm once, in order, and ends after the last; an mm leaving moves
 * the cursor only if it stood there.
 */
#ifndef _MM_KSM_TESTS_REGISTRY_KUNIT_H
#define _MM_KSM_TESTS_REGISTRY_KUNIT_H

#include <kunit/test.h>

#define SCAN_TEST_MMS 4

static void scan_test_list(struct list_head *list, struct ksm_mm *kmms)
{
	unsigned int i;

	INIT_LIST_HEAD(list);
	for (i = 0; i < SCAN_TEST_MMS; i++)
		list_add_tail(&kmms[i].scan, list);
}

static void ksm_scan_test_pass_visits_each_mm(struct kunit *test)
{
	struct ksm_mm kmms[SCAN_TEST_MMS] = { };
	struct ksm_cursor c = { };
	struct list_head list;
	unsigned int pass, i;

	scan_test_list(&list, kmms);
	for (pass = 0; pass < 3; pass++) {
		KUNIT_ASSERT_TRUE(test, cursor_start(&c, &list));
		for (i = 0; i < SCAN_TEST_MMS; i++) {
			KUNIT_EXPECT_PTR_EQ(test, &kmms[i], c.kmm);
			KUNIT_EXPECT_FALSE(test, cursor_pass_ended(&c));
			c.addr = 0x1000 * (i + 1);
			cursor_advance(&c, &list, c.kmm);
			/* Each mm is scanned from its start. */
			KUNIT_EXPECT_EQ(test, 0ul, c.addr);
		}
		KUNIT_EXPECT_NULL(test, c.kmm);
		KUNIT_EXPECT_EQ(test, pass + 1ul, c.passes);
		/* The end of a pass is reported once. */
		KUNIT_EXPECT_TRUE(test, cursor_pass_ended(&c));
		KUNIT_EXPECT_FALSE(test, cursor_pass_ended(&c));
	}
}

static void ksm_scan_test_leaving_mm_moves_cursor(struct kunit *test)
{
	struct ksm_mm kmms[SCAN_TEST_MMS] = { };
	struct ksm_cursor c = { };
	struct list_head list;

	scan_test_list(&list, kmms);
	KUNIT_ASSERT_TRUE(test, cursor_start(&c, &list));
	cursor_advance(&c, &list, &kmms[0]);
	c.addr = 0x5000;

	/* An mm the cursor is not on leaves: nothing moves. */
	cursor_advance(&c, &list, &kmms[2]);
	list_del(&kmms[2].scan);
	KUNIT_EXPECT_PTR_EQ(test, &kmms[1], c.kmm);
	KUNIT_EXPECT_EQ(test, 0x5000ul, c.addr);

	/* The one it is on leaves: on to the next, from its start. */
	cursor_advance(&c, &list, &kmms[1]);
	list_del(&kmms[1].scan);
	KUNIT_EXPECT_PTR_EQ(test, &kmms[3], c.kmm);
	KUNIT_EXPECT_EQ(test, 0ul, c.addr);

	/* The last leaves: the pass is over, and counted once. */
	cursor_advance(&c, &list, &kmms[3]);
	list_del(&kmms[3].scan);
	KUNIT_EXPECT_NULL(test, c.kmm);
	KUNIT_EXPECT_EQ(test, 1ul, c.passes);
	cursor_advance(&c, &list, &kmms[0]);
	KUNIT_EXPECT_EQ(test, 1ul, c.passes);
	KUNIT_EXPECT_TRUE(test, cursor_pass_ended(&c));

	/* Nothing listed: no pass starts. */
	list_del(&kmms[0].scan);
	KUNIT_EXPECT_FALSE(test, cursor_start(&c, &list));
	KUNIT_EXPECT_NULL(test, c.kmm);
}

static struct kunit_case ksm_scan_test_cases[] = {
	KUNIT_CASE(ksm_scan_test_pass_visits_each_mm),
	KUNIT_CASE(ksm_scan_test_leaving_mm_moves_cursor),
	{},
};

static struct kunit_suite ksm_scan_test_suite = {
	.name = "ksm_scan",
	.test_cases = ksm_scan_test_cases,
};

kunit_test_suite(ksm_scan_test_suite);

#endif /* _MM_KSM_TESTS_REGISTRY_KUNIT_H */
