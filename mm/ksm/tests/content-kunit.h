/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit tests for mm/ksm/content.c: the order key agrees with memcmp(),
 * and the signature notices every single-word change.
 */
#ifndef _MM_KSM_TESTS_CONTENT_KUNIT_H
#define _MM_KSM_TESTS_CONTENT_KUNIT_H

#include <kunit/test.h>
#include <linux/prandom.h>
#include <linux/slab.h>

static void *test_page(struct kunit *test)
{
	void *page = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, page);
	return page;
}

static int sign(int v)
{
	return (v > 0) - (v < 0);
}

static void ksm_content_test_zero_page(struct kunit *test)
{
	u8 *page = test_page(test);
	unsigned int i;

	KUNIT_EXPECT_EQ(test, 0ULL, ksm_content_key(page));
	for (i = 0; i < PAGE_SIZE; i += 511) {
		page[i] = 1;
		KUNIT_EXPECT_NE_MSG(test, 0ULL, ksm_content_key(page),
				    "byte %u set", i);
		page[i] = 0;
	}
	/* The zero page sorts before any other page, whatever its key. */
	page[PAGE_SIZE - 1] = 1;
	KUNIT_EXPECT_LT(test, 0ULL, ksm_content_key(page));
}

/* Fill a page the way real memory looks: a zero prefix, then a few values. */
static void fill_like_memory(u8 *page, struct rnd_state *rs)
{
	unsigned int zeroes = prandom_u32_state(rs) % 4 ?
			      prandom_u32_state(rs) % 64 :
			      prandom_u32_state(rs) % PAGE_SIZE;
	unsigned int i;

	memset(page, 0, zeroes);
	for (i = zeroes; i < PAGE_SIZE; i++)
		page[i] = prandom_u32_state(rs) % 3 ? prandom_u32_state(rs) % 4 : 0;
}

static void ksm_content_test_key_agrees_with_memcmp(struct kunit *test)
{
	u8 *a = test_page(test), *b = test_page(test);
	unsigned int n, decided = 0;
	struct rnd_state rs;

	prandom_seed_state(&rs, 12);
	for (n = 0; n < 2000; n++) {
		u64 ka, kb;
		int want;

		fill_like_memory(a, &rs);
		if (n % 3) {
			fill_like_memory(b, &rs);
		} else {	/* near twins: one bit apart */
			memcpy(b, a, PAGE_SIZE);
			b[prandom_u32_state(&rs) % PAGE_SIZE] ^= 1 << (n % 8);
		}
		ka = ksm_content_key(a);
		kb = ksm_content_key(b);
		want = sign(memcmp(a, b, PAGE_SIZE));
		if (ka != kb) {
			decided++;
			KUNIT_EXPECT_EQ_MSG(test, want, ka < kb ? -1 : 1,
					    "pair %u: keys %llx %llx", n, ka, kb);
		}
		KUNIT_EXPECT_EQ_MSG(test, want, sign(ksm_content_cmp(ka, a, kb, b)),
				    "pair %u", n);
	}
	/* The point of the key: most comparisons never read the pages. */
	KUNIT_EXPECT_GT(test, decided, 2000u / 2);
}

static void ksm_content_test_equal_keys_fall_back(struct kunit *test)
{
	u8 *a = test_page(test), *b = test_page(test);

	memset(a, 0x5a, PAGE_SIZE);
	memcpy(b, a, PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, 0, ksm_content_cmp(ksm_content_key(a), a,
						 ksm_content_key(b), b));
	b[PAGE_SIZE - 1] = 0x5b;
	KUNIT_EXPECT_EQ(test, ksm_content_key(a), ksm_content_key(b));
	KUNIT_EXPECT_LT(test, ksm_content_cmp(ksm_content_key(a), a,
					      ksm_content_key(b), b), 0);
	KUNIT_EXPECT_GT(test, ksm_content_cmp(ksm_content_key(b), b,
					      ksm_content_key(a), a), 0);
}

static void ksm_content_test_sig_sees_every_word(struct kunit *test)
{
	u64 *page = test_page(test);
	struct rnd_state rs;
	unsigned int i;
	u64 sig;

	prandom_seed_state(&rs, 34);
	prandom_bytes_state(&rs, page, PAGE_SIZE);
	sig = ksm_content_sig(page);
	for (i = 0; i < KSM_WORDS; i++) {
		u64 old = page[i];

		page[i] ^= BIT_ULL(i % 64);
		KUNIT_EXPECT_NE_MSG(test, sig, ksm_content_sig(page), "word %u", i);
		page[i] = old + 1;
		KUNIT_EXPECT_NE_MSG(test, sig, ksm_content_sig(page), "word %u", i);
		page[i] = old;
	}
	KUNIT_EXPECT_EQ(test, sig, ksm_content_sig(page));
}

static void ksm_content_test_sig_depends_on_content_only(struct kunit *test)
{
	u64 *a = test_page(test), *b = test_page(test);
	u64 sig;

	memset(a, 0x17, PAGE_SIZE);
	memcpy(b, a, PAGE_SIZE);
	sig = ksm_content_sig(a);
	KUNIT_EXPECT_EQ(test, sig, ksm_content_sig(b));
	/* Swapping two words is a change too. */
	b[0] = 1;
	b[1] = 2;
	a[0] = 2;
	a[1] = 1;
	KUNIT_EXPECT_NE(test, ksm_content_sig(a), ksm_content_sig(b));
}

static struct kunit_case ksm_content_test_cases[] = {
	KUNIT_CASE(ksm_content_test_zero_page),
	KUNIT_CASE(ksm_content_test_key_agrees_with_memcmp),
	KUNIT_CASE(ksm_content_test_equal_keys_fall_back),
	KUNIT_CASE(ksm_content_test_sig_sees_every_word),
	KUNIT_CASE(ksm_content_test_sig_depends_on_content_only),
	{},
};

static struct kunit_suite ksm_content_test_suite = {
	.name = "ksm_content",
	.test_cases = ksm_content_test_cases,
};

kunit_test_suite(ksm_content_test_suite);

#endif /* _MM_KSM_TESTS_CONTENT_KUNIT_H */
