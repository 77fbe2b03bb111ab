/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interface of the KSM subsystem, shared by the files of mm/ksm/.
 * The rest of the kernel sees only include/linux/ksm.h.
 */
#ifndef _MM_KSM_KSM_H
#define _MM_KSM_KSM_H

#include <linux/types.h>
#include <linux/mm.h>

/* 8-byte words in a page */
#define KSM_WORDS		(PAGE_SIZE / sizeof(u64))

/*
 * An order key holds, from the top: how many words precede the first
 * non-zero one, counted down from KSM_WORDS (so that it needs
 * PAGE_SHIFT - 2 bits), then the top bits of that word read big-endian.
 */
#define KSM_KEY_INDEX_BITS	(PAGE_SHIFT - 2)
#define KSM_KEY_VALUE_BITS	(64 - KSM_KEY_INDEX_BITS)

/* content.c */
u64 ksm_content_key(const void *addr);
int ksm_content_cmp(u64 key_a, const void *a, u64 key_b, const void *b);
u64 ksm_content_sig(const void *addr);

#endif /* _MM_KSM_KSM_H */
