// SPDX-License-Identifier: GPL-2.0
/*
 * KSM scan: ksmd's walk over the registered mms, one batch at a time, and
 * what it learns of every page it passes.
 */
#include <linux/highmem.h>
#include <linux/pagewalk.h>
#include <linux/ktime.h>
#include <linux/sched/cputime.h>
#include <linux/sched/mm.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <trace/events/ksm.h>

#include "ksm.h"

#define KSM_BATCH	64

enum seen_kind {
	SEEN_PAGE,	/* a small anonymous page, referenced */
	SEEN_LARGE,	/* part of a large folio: looked up again when visited */
	SEEN_SWAP,	/* swapped out: its slot stays as it is */
};

/*
 * Pages a walk picked up, in address order.  Large folios are not pinned
 * meanwhile: merging splits them, which our references would prevent.
 */
struct ksm_batch {
	unsigned int nr;
	unsigned int max;
	unsigned int idle;		/* ptes passed over with no page */
	unsigned long next;		/* where the walk stopped */
	unsigned long addr[KSM_BATCH];
	struct page *page[KSM_BATCH];
	u8 kind[KSM_BATCH];
};

/* Only ksmd scans, under ksm_lock: one batch, off the stack. */
static struct ksm_batch batch;

static int batch_add(struct ksm_batch *b, unsigned long addr,
		     struct page *page, enum seen_kind kind,
		     unsigned long next)
{
	b->addr[b->nr] = addr;
	b->page[b->nr] = page;
	b->kind[b->nr] = kind;
	if (++b->nr < b->max)
		return 0;
	b->next = next;
	return 1;
}

/*
 * Ptes a walk passes over (none, zero page, not anonymous) before it
 * stops to let the scan yield: a huge VMA of such ptes must not hold
 * the CPU.
 */
#define KSM_WALK_IDLE	1024

static int batch_idle(struct ksm_batch *b, unsigned long next)
{
	if (++b->idle < KSM_WALK_IDLE)
		return 0;
	b->next = next;
	return 1;
}

static int batch_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	struct ksm_batch *b = walk->private;
	struct folio *folio;
	spinlock_t *ptl;	/* the page table lock */
	int ret = 0;

	ptl = pmd_trans_huge_lock(pmd, walk->vma);
	if (!ptl)
		return 0;	/* a page table: the ptes follow */
	walk->action = ACTION_CONTINUE;
	folio = pmd_present(*pmd) ? page_folio(pmd_page(*pmd)) : NULL;
	if (folio && folio_test_anon(folio) && !is_huge_zero_folio(folio) &&
	    !folio_is_zone_device(folio)) {
		for (; addr < next && !ret; addr += PAGE_SIZE)
			ret = batch_add(b, addr, NULL, SEEN_LARGE,
					addr + PAGE_SIZE);
	}
	spin_unlock(ptl);
	return ret;
}

static int batch_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	struct ksm_batch *b = walk->private;
	pte_t val = ptep_get(pte);
	struct folio *folio;
	struct page *page;

	if (!pte_present(val)) {
		if (pte_none(val) || !is_swap_pte(val))
			return batch_idle(b, next);
		return batch_add(b, addr, NULL, SEEN_SWAP, next);
	}
	page = vm_normal_page(walk->vma, addr, val);
	if (!page)
		return batch_idle(b, next);
	folio = page_folio(page);
	/* Device memory is not ours to merge, even when mapped like RAM. */
	if (!folio_test_anon(folio) || folio_is_zone_device(folio))
		return batch_idle(b, next);
	if (folio_test_large(folio))
		return batch_add(b, addr, NULL, SEEN_LARGE, next);
	folio_get(folio);
	return batch_add(b, addr, page, SEEN_PAGE, next);
}

static const struct mm_walk_ops batch_ops = {
	.pmd_entry	= batch_pmd_entry,
	.pte_entry	= batch_pte_entry,
	.walk_lock	= PGWALK_RDLOCK,
};

/* The part of a page's signature its slot keeps. */
static u32 page_sig(struct page *page)
{
	void *kaddr = kmap_local_page(page);
	u32 sig = ksm_sig_fold(ksm_content_sig(kaddr));

	kunmap_local(kaddr);
	return sig;
}

/*
 * What one visit learns of a page; a page that stopped changing goes on
 * to merging.  Return false if smart scan passed the page by: as in 6.12,
 * it then counts in pages_skipped, not in pages_scanned.
 * Context: ksm_lock and a user of the mm held, no mmap lock.
 */
static bool visit_page(struct ksm_mm *kmm, unsigned long addr,
		       struct page *page, const struct ksm_pins *pins)
{
	struct folio *folio = page_folio(page);
	enum ksm_track_state state;
	struct ksm_sharer *sh;
	struct ksm_cand cand;
	bool smart, ready;

	smart = READ_ONCE(ksm_knobs.smart_scan);
	state = ksm_track_load(&kmm->pages, addr, &cand, &sh);
	if (state == KSM_MERGED) {
		unsigned int hist = ksm_sharer_hist(sh);

		if (ksm_folio_stable(folio) == sh->stable) {
			struct ksm_stable *twin;

			/* Still merged; the node follows a migrated page. */
			VM_WARN_ON_ONCE(ksm_sharer_addr(sh) != addr);
			if (ksm_hist_steady(hist) != hist)
				WRITE_ONCE(sh->where,
					   addr | ksm_hist_steady(hist));
			ksm_stable_moved(sh->stable, folio);
			twin = ksm_stable_fuller_twin(sh->stable);
			if (twin)
				ksm_merge_twin(sh, page, twin);
			return true;
		}
		/* Written to, or unmerged, since: a candidate again. */
		ksm_stable_drop(sh);
		cand = (struct ksm_cand) { };
		if (!folio_test_ksm(folio)) {
			ksm_cand_broken(&cand, page_sig(page), smart, hist);
			ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
			return true;
		}
		ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
		state = KSM_CANDIDATE;
	}
	if (state == KSM_UNTRACKED) {
		/* Never seen: one slot, and the signature to compare next time. */
		cand = (struct ksm_cand) { };
		if (ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL))
			return true;	/* no memory: try again next pass */
		kmm->mm->ksm_rmap_items++;
		atomic_long_inc(&ksm_stats.tracked);
		if (folio_test_ksm(folio)) {
			ksm_attach_page(kmm, addr, page);
			return true;
		}
		cand.sig = page_sig(page);
		ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
		return true;
	}
	if (folio_test_ksm(folio)) {
		cand.unshared = false;
		ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
		ksm_attach_page(kmm, addr, page);
		return true;
	}
	/* Skipped pages still count as unshared, as in 6.12. */
	if (ksm_cand_skip(&cand, smart)) {
		ksm_stats.pages_skipped++;
		ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
		return false;
	}
	/* A new pass: the unstable tree it was put in is gone. */
	cand.unshared = false;

	ready = ksm_cand_settle(&cand, page_sig(page), smart);
	/* The slot exists: overwriting it allocates nothing. */
	ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
	if (ready &&
	    ksm_merge_page(kmm, addr, page, ksm_cand_hist(cand), pins)) {
		cand.unshared = true;
		ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
	}
	return true;
}

/*
 * Part of a large folio: look the page up again, holding it alone.
 * Return true if it counts as scanned.
 */
static bool visit_large(struct ksm_mm *kmm, unsigned long addr,
			const struct ksm_pins *pins)
{
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	struct page *page = NULL;
	bool looked = false;

	mmap_read_lock(mm);
	vma = ksm_vma(mm, addr);
	if (vma)
		page = ksm_lookup_page(vma, addr);
	mmap_read_unlock(mm);
	if (page) {
		looked = visit_page(kmm, addr, page, pins);
		put_page(page);
	}
	return looked;
}

static bool scan_vma_ok(struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_MERGEABLE) && vma->anon_vma;
}

/*
 * Fill the batch from ksm_cursor.addr with up to @want pages, forgetting the
 * tracked pages the walk no longer finds (unmapped, or no longer
 * mergeable).  Return true when the walk reached the end of the mm.
 * Context: mmap lock held.
 */
static bool fill_batch(struct ksm_mm *kmm, unsigned int want)
{
	VMA_ITERATOR(vmi, kmm->mm, ksm_cursor.addr);
	unsigned long addr = ksm_cursor.addr;
	struct ksm_batch *b = &batch;
	struct vm_area_struct *vma;
	unsigned int i, first;
	int err;

	b->nr = 0;
	b->idle = 0;
	for_each_vma(vmi, vma) {
		unsigned long start;

		if (vma->vm_flags & VM_MERGEABLE)
			ksm_cursor.mergeable = true;
		/* Forgotten with the gap before the next VMA to scan: one call. */
		if (!scan_vma_ok(vma))
			continue;
		start = max(addr, vma->vm_start);
		ksm_mm_forget_range(kmm, addr, start);
		addr = start;
		while (addr < vma->vm_end && b->nr < want) {
			first = b->nr;
			b->max = want;
			b->next = vma->vm_end;
			err = walk_page_range_vma(vma, addr, vma->vm_end,
						  &batch_ops, b);
			for (i = first; i < b->nr; i++) {
				ksm_mm_forget_range(kmm, addr, b->addr[i]);
				addr = b->addr[i] + PAGE_SIZE;
			}
			if (err < 0) {
				/* Not walked: no reason to forget what is there. */
				addr = vma->vm_end;
				break;
			}
			ksm_mm_forget_range(kmm, addr, b->next);
			addr = b->next;
			if (b->idle >= KSM_WALK_IDLE)
				break;
		}
		if (b->nr >= want || b->idle >= KSM_WALK_IDLE) {
			ksm_cursor.addr = addr;
			return false;
		}
	}
	ksm_mm_forget_range(kmm, addr, ULONG_MAX);
	return true;
}

/*
 * Scan one mm from ksm_cursor.addr for at most @budget pages, a batch at a
 * time: the walk holds the mmap lock, the visits do not.  As in 6.12, the
 * budget counts the pages scanned, not those smart scan passed by or that
 * are swapped out.  Return how many were scanned; *done says whether the
 * mm is finished for this pass.  Context: ksm_lock and a user of the mm
 * held.
 */
static unsigned int scan_mm(struct ksm_mm *kmm, unsigned int budget,
			    bool *done)
{
	struct mm_struct *mm = kmm->mm;
	struct ksm_batch *b = &batch;
	unsigned int seen = 0, i;

	*done = false;
	while (seen < budget && !*done) {
		mmap_read_lock(mm);
		*done = fill_batch(kmm, min_t(unsigned int, KSM_BATCH,
					      budget - seen));
		mmap_read_unlock(mm);

		for (i = 0; i < b->nr; i++) {
			/* Still pinned: a twin among them has a reference more. */
			struct ksm_pins pins = {
				.page = &b->page[i + 1], .nr = b->nr - i - 1,
			};
			bool looked = false;

			switch (b->kind[i]) {
			case SEEN_PAGE:
				looked = visit_page(kmm, b->addr[i], b->page[i],
						    &pins);
				put_page(b->page[i]);
				break;
			case SEEN_LARGE:
				looked = visit_large(kmm, b->addr[i], &pins);
				break;
			case SEEN_SWAP:
				break;
			}
			if (looked) {
				ksm_stats.pages_scanned++;
				seen++;
			}
		}
		cond_resched();
	}
	return seen;
}

/*
 * Between two passes: the unstable tree starts afresh, the stable nodes
 * that lost their last sharer are looked at again, and exited mms that
 * unstable nodes named are freed.
 */
static void end_pass(void)
{
	ksm_unstable_reset();
	ksm_stable_end_pass();
	ksm_free_graveyard();
}

/*
 * The scan-time advisor (advisor_mode=scan-time), with 6.12's rules: at
 * the end of each pass, pages_to_scan is scaled by how far the pass's
 * length was from advisor_target_scan_time, times a smoothed trend of
 * pass lengths, then kept within what ksmd's CPU use allows (at most
 * advisor_max_cpu percent, at today's cost per page) and within
 * advisor_min/max_pages_to_scan (6.12 applies the minimum only when
 * the mode is chosen).  6.12 also holds ksmd above 10% CPU; scanning
 * cheaply, ours would then run far ahead of the target and swing back
 * and forth, so it does not.
 */
#define KSM_ADVISOR_SMOOTHING	30	/* weight of the newest, percent */

static struct {
	ktime_t start;		/* of the pass under way; 0 if none */
	u64 runtime;		/* ksmd's CPU time at the last pass end */
	unsigned long secs;	/* the last pass's length, seconds */
	unsigned long trend;	/* smoothed pass length change, percent */
} advisor;

/**
 * ksm_advisor_reset() - the advisor starts over (a new advisor_mode)
 *
 * Context: ksm_lock held.
 */
void ksm_advisor_reset(void)
{
	lockdep_assert_held(&ksm_lock);
	memset(&advisor, 0, sizeof(advisor));
}

static unsigned long mul_sat(unsigned long a, unsigned long b)
{
	unsigned long r;

	return check_mul_overflow(a, b, &r) ? ULONG_MAX : r;
}

static void advisor_pass_end(void)
{
	unsigned long secs, pct, goal, trend, pages, cur, per_pct;
	u64 runtime, cpu_ms;

	if (READ_ONCE(ksm_knobs.advisor) != KSM_ADVISOR_SCAN_TIME ||
	    !advisor.start)
		return;
	secs = max_t(s64, div_s64(ktime_ms_delta(ktime_get(), advisor.start),
				  MSEC_PER_SEC), 1);
	runtime = task_sched_runtime(current);
	cpu_ms = div_u64(runtime - advisor.runtime, NSEC_PER_MSEC);
	pct = min_t(u64, div64_u64(cpu_ms * 100, (u64)secs * MSEC_PER_SEC),
		    UINT_MAX);
	pct = max(pct, 1UL);

	goal = mul_sat(READ_ONCE(ksm_knobs.advisor_target_scan_time), 100) /
	       secs;
	goal = max(goal, 1UL);
	trend = max(secs * 100 / (advisor.secs ? advisor.secs : secs), 1UL);
	trend = ((100 - KSM_ADVISOR_SMOOTHING) * advisor.trend +
		 KSM_ADVISOR_SMOOTHING * trend) / 100;

	cur = READ_ONCE(ksm_knobs.pages_to_scan);
	pages = mul_sat(cur, 100) / goal;
	pages = mul_sat(pages, trend) / 100;
	per_pct = max(cur / pct, 1UL);
	pages = min(pages, mul_sat(per_pct, READ_ONCE(ksm_knobs.advisor_max_cpu)));
	pages = max(pages, READ_ONCE(ksm_knobs.advisor_min_pages));
	pages = min(pages, READ_ONCE(ksm_knobs.advisor_max_pages));
	/* At least a page: a batch of none would end no pass, for ever. */
	pages = clamp_t(unsigned long, pages, 1, UINT_MAX);

	advisor.runtime = runtime;
	advisor.secs = secs;
	advisor.trend = trend;
	advisor.start = 0;
	WRITE_ONCE(ksm_knobs.pages_to_scan, pages);
	trace_ksm_advisor(secs, pages, pct);
}

/* If the cursor went past the last mm: count the pass and end it. */
static void pass_done(void)
{
	bool ended;

	spin_lock(&ksm_mm_lock);
	ended = ksm_cursor_pass_ended();
	spin_unlock(&ksm_mm_lock);
	if (!ended)
		return;
	/* Numbered as full_scans counts them, from 0 after run=2 (6.12). */
	trace_ksm_stop_scan(ksm_stats.full_scans,
			    atomic_long_read(&ksm_stats.tracked));
	ksm_stats.full_scans++;
	advisor_pass_end();
	end_pass();
}

/**
 * ksm_scan_restart() - drop the pass under way; the next starts afresh
 *
 * Context: ksm_lock held.
 */
void ksm_scan_restart(void)
{
	lockdep_assert_held(&ksm_lock);
	ksm_cursor_reset();
	end_pass();
}

/**
 * ksm_scan_batch() - scan up to @budget pages from where the cursor stands
 * @budget: pages_to_scan
 *
 * Stops early at the end of a pass, so that a pass over mms with nothing
 * to scan costs one batch.
 *
 * Context: ksm_lock held; takes mmap locks.
 */
void ksm_scan_batch(unsigned int budget)
{
	struct ksm_mm *kmm;
	struct mm_struct *mm;
	bool got, done, retired;
	unsigned int seen;

	lockdep_assert_held(&ksm_lock);
	while (budget) {
		pass_done();

		spin_lock(&ksm_mm_lock);
		if (!ksm_cursor.kmm) {
			if (!ksm_cursor_start()) {
				spin_unlock(&ksm_mm_lock);
				return;
			}
			spin_unlock(&ksm_mm_lock);
			trace_ksm_start_scan(ksm_stats.full_scans,
					     atomic_long_read(&ksm_stats.tracked));
			if (READ_ONCE(ksm_knobs.advisor) == KSM_ADVISOR_SCAN_TIME) {
				advisor.start = ktime_get();
				/* A new advisor counts ksmd's CPU from here. */
				if (!advisor.runtime)
					advisor.runtime = task_sched_runtime(current);
			}
			ksm_stable_pass_start();
			/* Fresh pages wait in per-CPU lists, referenced. */
			lru_add_drain_all();
			continue;
		}
		kmm = ksm_cursor.kmm;
		mm = kmm->mm;
		/* A user reference keeps __ksm_exit() and kmm's freeing away. */
		got = mmget_not_zero(mm);
		spin_unlock(&ksm_mm_lock);

		done = true;
		seen = 0;
		if (got)
			seen = scan_mm(kmm, budget, &done);
		budget -= min(seen, budget);
		/* As 6.12: an mm with no mergeable VMA left leaves the registry. */
		retired = got && done && !ksm_cursor.mergeable && ksm_mm_retire(kmm);

		spin_lock(&ksm_mm_lock);
		if (done && !retired)
			ksm_cursor_advance(kmm);
		if (got)
			mmput_async(mm);	/* async: we hold ksm_lock */
		done = !ksm_cursor.kmm;
		spin_unlock(&ksm_mm_lock);
		if (done)
			break;
	}
	pass_done();
}
