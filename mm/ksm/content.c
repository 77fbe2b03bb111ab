// SPDX-License-Identifier: GPL-2.0
/*
 * KSM page contents: the order both trees keep, and the signature that
 * tells a page that stopped changing from one that did not.
 *
 * Both trees are ordered as memcmp() orders pages.  A tree descent compares
 * one page against many; most of those comparisons are settled by an order
 * key cached in the tree node, without touching the other page at all.
 */
#include <linux/bitops.h>
#include <linux/string.h>
#include <asm/byteorder.h>

#include "ksm.h"

/**
 * ksm_content_key() - the order key of a page's contents
 * @addr: the page, mapped
 *
 * Where the keys of two pages differ, they order the pages as memcmp()
 * does: a page whose first non-zero word comes later is the smaller one,
 * and pages whose first non-zero words share a position are ordered by
 * that word, read big-endian as memcmp() reads bytes.  Only the top bits
 * of the word fit in the key, so equal keys leave the order open (see
 * ksm_content_cmp()).  A page of zeroes, and only such a page, has key 0.
 *
 * Return: the key.
 */
u64 ksm_content_key(const void *addr)
{
	const __be64 *word = addr;
	unsigned int i;

	for (i = 0; i < KSM_WORDS; i++) {
		if (word[i])
			return (u64)(KSM_WORDS - i) << KSM_KEY_VALUE_BITS |
			       be64_to_cpu(word[i]) >> KSM_KEY_INDEX_BITS;
	}
	return 0;
}

/**
 * ksm_content_cmp() - order two pages by contents
 * @key_a: ksm_content_key() of @a, as cached
 * @a: the first page, mapped
 * @key_b: ksm_content_key() of @b, as cached
 * @b: the second page, mapped
 *
 * Decides on the keys alone when they differ.  A key cached for a page
 * that changed since is still a consistent order for the tree that holds
 * it: the unstable tree tolerates such entries, and the stable tree never
 * has them, since KSM pages do not change.
 *
 * Return: negative, zero or positive as @a sorts before, with or after @b.
 */
int ksm_content_cmp(u64 key_a, const void *a, u64 key_b, const void *b)
{
	if (key_a != key_b)
		return key_a < key_b ? -1 : 1;
	return memcmp(a, b, PAGE_SIZE);
}

#define SIG_MUL		0x9e3779b97f4a7c15ULL	/* odd: multiplying is a bijection */

/**
 * ksm_content_sig() - the volatility signature of a page
 * @addr: the page, mapped
 *
 * Four independent lanes each fold every fourth word as acc = (acc + w) * M
 * with M odd, so each step is a bijection of both acc and w: a change to a
 * single word always changes the signature, and a wider change goes
 * unnoticed with probability about 2^-64.  Two operations a word, about
 * half the work of a general purpose hash: KSM needs to notice change, not
 * to resist an adversary, because a merge compares the pages in full under
 * write protection anyway.
 *
 * Return: the signature.
 */
u64 ksm_content_sig(const void *addr)
{
	const u64 *word = addr;
	u64 a = 0, b = 0, c = 0, d = 0;
	unsigned int i;

	for (i = 0; i < KSM_WORDS; i += 4) {
		a = (a + word[i]) * SIG_MUL;
		b = (b + word[i + 1]) * SIG_MUL;
		c = (c + word[i + 2]) * SIG_MUL;
		d = (d + word[i + 3]) * SIG_MUL;
	}
	/* For fixed others, each lane maps injectively into the result. */
	return a ^ rol64(b, 16) ^ rol64(c, 32) ^ rol64(d, 48);
}

#ifdef CONFIG_KSM_KUNIT_TEST
#include "tests/content-kunit.h"
#endif
