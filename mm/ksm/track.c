// SPDX-License-Identifier: GPL-2.0
/*
 * KSM tracked pages: what a registered mm knows of each page it has seen,
 * one xarray slot a page (see ksm.h for the encoding).
 */
#include <linux/xarray.h>

#include "ksm.h"

/**
 * ksm_track_load() - what is known of the page at an address
 * @pages: the tracked pages of an mm
 * @addr: the page's virtual address
 * @cand: filled in when the page is a candidate
 * @sharer: filled in when the page is merged
 *
 * Context: any; the caller keeps the slot from changing under it.
 * Return: the state of the page, which says which of @cand and @sharer
 * was filled in.
 */
enum ksm_track_state ksm_track_load(struct xarray *pages, unsigned long addr,
				    struct ksm_cand *cand,
				    struct ksm_sharer **sharer)
{
	void *entry = xa_load(pages, addr >> PAGE_SHIFT);

	if (!entry)
		return KSM_UNTRACKED;
	if (xa_is_value(entry)) {
		*cand = ksm_entry_cand(entry);
		return KSM_CANDIDATE;
	}
	*sharer = entry;
	return KSM_MERGED;
}

static bool entry_unshared(const void *entry)
{
	return xa_is_value(entry) && ksm_entry_cand(entry).unshared;
}

/*
 * pages_unshared counts the slots of pages put in the unstable tree and
 * not visited since, as 6.12 counts its rmap_items there: a slot change
 * keeps it right.
 */
static void account(const void *old, const void *new)
{
	if (xa_is_err(old))
		return;
	if (entry_unshared(old) && !entry_unshared(new))
		ksm_stats.pages_unshared--;
	else if (!entry_unshared(old) && entry_unshared(new))
		ksm_stats.pages_unshared++;
}

/**
 * ksm_track_store_cand() - record a page as a candidate
 * @pages: the tracked pages of an mm
 * @addr: the page's virtual address
 * @cand: what the visit learnt
 * @gfp: for the xarray's own nodes, the first time a range is tracked
 *
 * Context: ksm_lock held.
 * Return: 0, or -ENOMEM.
 */
int ksm_track_store_cand(struct xarray *pages, unsigned long addr,
			 struct ksm_cand cand, gfp_t gfp)
{
	void *entry = ksm_cand_entry(cand);
	void *old = xa_store(pages, addr >> PAGE_SHIFT, entry, gfp);

	account(old, entry);
	return xa_err(old);
}

/**
 * ksm_track_store_sharer() - record a page as mapped to a KSM page
 * @pages: the tracked pages of an mm
 * @addr: the page's virtual address, whose slot exists
 * @sharer: its entry among the KSM page's sharers
 *
 * Context: ksm_lock held.  Replacing a slot allocates nothing.
 */
void ksm_track_store_sharer(struct xarray *pages, unsigned long addr,
			    struct ksm_sharer *sharer)
{
	void *old = xa_store(pages, addr >> PAGE_SHIFT, sharer, GFP_NOWAIT);

	WARN_ON_ONCE(!old || xa_is_err(old));
	account(old, sharer);
}

/**
 * ksm_track_forget() - stop tracking the page at an address
 * @pages: the tracked pages of an mm
 * @addr: the page's virtual address
 *
 * Context: ksm_lock held.
 */
void ksm_track_forget(struct xarray *pages, unsigned long addr)
{
	account(xa_erase(pages, addr >> PAGE_SHIFT), NULL);
}

/*
 * Volatility.  A page goes to the trees only once its signature held from
 * one visit to the next; a page that changed often lately (flips) must
 * hold still longer, and is looked at less often meanwhile, so that pages
 * that keep changing are neither hashed every pass nor merged only to be
 * copied again at the next write.  Smart scan also backs off pages that
 * hold still but stay alone.
 */

/* Unchanged this many visits and still alone: start skipping. */
#define KSM_CAND_SKIP_AFTER	3
/* Extra visits a page must hold still for, at most. */
#define KSM_CAND_WAIT_MAX	3

/**
 * ksm_cand_skip() - should this visit pass the page by?
 * @cand: the candidate, updated
 * @smart: smart scan is on
 *
 * Return: true to skip the page (not even hashing it) this time.
 */
bool ksm_cand_skip(struct ksm_cand *cand, bool smart)
{
	if (!smart || !cand->skip)
		return false;
	cand->skip--;
	return true;
}

/* A page that keeps changing is looked at less and less often. */
static void back_off_flips(struct ksm_cand *cand, bool smart)
{
	if (smart && cand->flips > 1)
		cand->skip = min(1U << (cand->flips - 2), KSM_CAND_SKIP_MAX);
}

/**
 * ksm_cand_settle() - what a visit that hashed the page learnt
 * @cand: the candidate, updated
 * @sig: ksm_sig_fold() of the page's signature now
 * @smart: smart scan is on
 *
 * Return: true if the page stopped changing and may go to the trees.
 */
bool ksm_cand_settle(struct ksm_cand *cand, u32 sig, bool smart)
{
	bool ready;

	if (cand->sig != sig) {
		*cand = (struct ksm_cand) {
			.sig = sig,
			.flips = min(cand->flips + 1U, KSM_CAND_FLIPS_MAX),
			.breaks = cand->breaks,
		};
		back_off_flips(cand, smart);
		return false;
	}
	cand->age = min_t(unsigned int, cand->age + 1, KSM_CAND_AGE_MAX);
	/* One change waits one visit, as in 6.12; more changes, longer. */
	ready = cand->age > min_t(unsigned int, cand->flips ? cand->flips - 1 : 0,
				  KSM_CAND_WAIT_MAX);
	/* Holding still long enough makes up for a change. */
	if (ready && cand->flips)
		cand->flips--;
	if (smart && cand->age >= KSM_CAND_SKIP_AFTER)
		cand->skip = min_t(unsigned int,
				   cand->age - KSM_CAND_SKIP_AFTER + 1,
				   KSM_CAND_SKIP_MAX);
	return ready;
}

#define HIST_BREAKS_SHIFT	KSM_CAND_FLIPS_BITS

/**
 * ksm_cand_hist() - what a page about to merge takes along
 * @cand: the candidate
 *
 * Return: the history to keep in its sharer entry.
 */
unsigned int ksm_cand_hist(struct ksm_cand cand)
{
	return min_t(unsigned int, cand.flips, KSM_CAND_FLIPS_MAX) |
	       min_t(unsigned int, cand.breaks, KSM_CAND_BREAKS_MAX) <<
	       HIST_BREAKS_SHIFT;
}

/**
 * ksm_hist_steady() - a merged page was found still merged
 * @hist: its history
 *
 * Return: the history, with one broken merge forgiven.
 */
unsigned int ksm_hist_steady(unsigned int hist)
{
	if (hist >> HIST_BREAKS_SHIFT)
		hist -= 1U << HIST_BREAKS_SHIFT;
	return hist;
}

/**
 * ksm_cand_broken() - a merged page was found a private page again
 * @cand: filled in
 * @sig: ksm_sig_fold() of the page's signature now
 * @smart: smart scan is on
 * @hist: the history its sharer entry kept
 *
 * Most often a write broke the sharing.  A page written once after it
 * merged is a candidate as before, and merges again two passes later if
 * it holds still (as in 6.12); one whose merges broke lately must hold
 * still longer each time, so that it is not merged only to be copied at
 * its next write (up to KSM_CAND_WAIT_MAX visits more).
 */
void ksm_cand_broken(struct ksm_cand *cand, u32 sig, bool smart,
		     unsigned int hist)
{
	unsigned int flips = hist & KSM_CAND_FLIPS_MAX;
	unsigned int breaks = hist >> HIST_BREAKS_SHIFT;

	/* The first break costs no wait; each later one, a visit more. */
	*cand = (struct ksm_cand) {
		.sig = sig,
		.flips = min(flips + (breaks ? breaks + 1 : 0),
			     KSM_CAND_FLIPS_MAX),
		.breaks = min(breaks + 1, KSM_CAND_BREAKS_MAX),
	};
	back_off_flips(cand, smart);
}

#ifdef CONFIG_KSM_KUNIT_TEST
#include "tests/track-kunit.h"
#endif
