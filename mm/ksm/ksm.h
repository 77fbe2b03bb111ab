/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interface of the KSM subsystem, shared by the files of mm/ksm/.
 * The rest of the kernel sees only include/linux/ksm.h.
 */
#ifndef _MM_KSM_KSM_H
#define _MM_KSM_KSM_H

#include <linux/bits.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/types.h>
#include <linux/xarray.h>

/* 8-byte words in a page */
#define KSM_WORDS		(PAGE_SIZE / sizeof(u64))

/*
 * An order key holds, from the top: how many words precede the first
 * non-zero one, counted down from KSM_WORDS (so that it needs
 * PAGE_SHIFT - 2 bits), then the top bits of that word read big-endian.
 */
#define KSM_KEY_INDEX_BITS	(PAGE_SHIFT - 2)
#define KSM_KEY_VALUE_BITS	(64 - KSM_KEY_INDEX_BITS)

/*
 * Tracked pages.  A registered mm keeps one xarray slot per page it has
 * seen present in a mergeable VMA, indexed by virtual page number.  The
 * slot of a candidate is a value entry packing all we know of the page,
 * so a candidate costs no allocation of its own; the slot of a merged page
 * points to the stable node of its KSM page.
 */
struct ksm_cand {
	u32 sig;	/* low bits of the signature at the last visit */
	u8 age;		/* visits the page stayed unmerged, saturating */
	u8 skip;	/* visits still to skip (smart scan) */
	bool zero;	/* KSM mapped the shared zero page here */
};

/* Value entries have BITS_PER_LONG - 1 bits: the signature takes what is left. */
#define KSM_CAND_AGE_BITS	5
#define KSM_CAND_SKIP_BITS	4
#define KSM_CAND_SIG_BITS	(BITS_PER_LONG == 64 ? 32 : 20)
#define KSM_CAND_AGE_MAX	((1U << KSM_CAND_AGE_BITS) - 1)
#define KSM_CAND_SKIP_MAX	((1U << KSM_CAND_SKIP_BITS) - 1)

#define KSM_CAND_AGE_SHIFT	KSM_CAND_SIG_BITS
#define KSM_CAND_SKIP_SHIFT	(KSM_CAND_AGE_SHIFT + KSM_CAND_AGE_BITS)
#define KSM_CAND_ZERO		BIT(KSM_CAND_SKIP_SHIFT + KSM_CAND_SKIP_BITS)
static_assert(KSM_CAND_SKIP_SHIFT + KSM_CAND_SKIP_BITS + 1 <= BITS_PER_XA_VALUE);

/* Pack a candidate into an xarray value entry; out-of-range fields clamp. */
static inline void *ksm_cand_entry(struct ksm_cand c)
{
	unsigned long v = c.sig & (BIT(KSM_CAND_SIG_BITS) - 1);

	v |= (unsigned long)min_t(unsigned int, c.age, KSM_CAND_AGE_MAX) <<
	     KSM_CAND_AGE_SHIFT;
	v |= (unsigned long)min_t(unsigned int, c.skip, KSM_CAND_SKIP_MAX) <<
	     KSM_CAND_SKIP_SHIFT;
	if (c.zero)
		v |= KSM_CAND_ZERO;
	return xa_mk_value(v);
}

static inline struct ksm_cand ksm_entry_cand(const void *entry)
{
	unsigned long v = xa_to_value(entry);

	return (struct ksm_cand) {
		.sig = v & (BIT(KSM_CAND_SIG_BITS) - 1),
		.age = (v >> KSM_CAND_AGE_SHIFT) & KSM_CAND_AGE_MAX,
		.skip = (v >> KSM_CAND_SKIP_SHIFT) & KSM_CAND_SKIP_MAX,
		.zero = v & KSM_CAND_ZERO,
	};
}

/*
 * The part of a full signature a candidate keeps: a change then goes
 * unnoticed with probability 2^-KSM_CAND_SIG_BITS.
 */
static inline u32 ksm_sig_fold(u64 sig)
{
	return (u32)(sig ^ sig >> 32) & (BIT(KSM_CAND_SIG_BITS) - 1);
}

struct ksm_stable;

enum ksm_track_state {
	KSM_UNTRACKED,		/* no slot: never seen, or forgotten */
	KSM_CANDIDATE,		/* value entry */
	KSM_MERGED,		/* pointer to a stable node */
};

/* track.c */
enum ksm_track_state ksm_track_load(struct xarray *pages, unsigned long addr,
				    struct ksm_cand *cand,
				    struct ksm_stable **stable);
int ksm_track_store_cand(struct xarray *pages, unsigned long addr,
			 struct ksm_cand cand, gfp_t gfp);
int ksm_track_store_merged(struct xarray *pages, unsigned long addr,
			   struct ksm_stable *stable, gfp_t gfp);
void ksm_track_forget(struct xarray *pages, unsigned long addr);

/* content.c */
u64 ksm_content_key(const void *addr);
int ksm_content_cmp(u64 key_a, const void *a, u64 key_b, const void *b);
u64 ksm_content_sig(const void *addr);

#endif /* _MM_KSM_KSM_H */
