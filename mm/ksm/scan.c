// SPDX-License-Identifier: GPL-2.0
/*
 * KSM scan: ksmd's walk over the registered mms, one batch at a time, and
 * what it learns of every page it passes.
 */
#include <linux/highmem.h>
#include <linux/pagewalk.h>
#include <linux/sched/mm.h>
#include <trace/events/ksm.h>

#include "ksm.h"

/*
 * The cursor: the mm being scanned and where to resume in it.  NULL means
 * between two passes.  Chosen under ksm_mm_lock, used under ksm_lock.
 */
static struct ksm_mm *cursor;
static unsigned long cursor_addr;
static int scan_seq;

#define KSM_BATCH	64

/* Pages a walk picked up, each with a reference held. */
struct ksm_batch {
	unsigned int nr;
	unsigned int max;
	unsigned long next;		/* where the walk stopped */
	unsigned long addr[KSM_BATCH];
	struct folio *folio[KSM_BATCH];
};

/* Only ksmd scans, under ksm_lock: one batch, off the stack. */
static struct ksm_batch batch;

static int batch_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	pmd_t val = pmdp_get_lockless(pmd);

	/* Huge pages stay whole: only small pages are tracked for now. */
	if (!pmd_present(val) || pmd_trans_huge(val))
		walk->action = ACTION_CONTINUE;
	return 0;
}

static int batch_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
			   struct mm_walk *walk)
{
	struct ksm_batch *b = walk->private;
	pte_t val = ptep_get(pte);
	struct folio *folio;
	struct page *page;

	if (!pte_present(val))
		return 0;
	page = vm_normal_page(walk->vma, addr, val);
	if (!page)
		return 0;
	folio = page_folio(page);
	if (!folio_test_anon(folio) || folio_test_large(folio))
		return 0;
	folio_get(folio);
	b->addr[b->nr] = addr;
	b->folio[b->nr] = folio;
	if (++b->nr < b->max)
		return 0;
	b->next = next;
	return 1;
}

static const struct mm_walk_ops batch_ops = {
	.pmd_entry	= batch_pmd_entry,
	.pte_entry	= batch_pte_entry,
	.walk_lock	= PGWALK_RDLOCK,
};

/* What one visit learns of a page. */
static void visit_page(struct ksm_mm *kmm, unsigned long addr,
		       struct folio *folio)
{
	struct ksm_stable *stable;
	struct ksm_cand cand;
	void *kaddr;
	u32 sig;

	kaddr = kmap_local_folio(folio, 0);
	sig = ksm_sig_fold(ksm_content_sig(kaddr));
	kunmap_local(kaddr);

	switch (ksm_track_load(&kmm->pages, addr, &cand, &stable)) {
	case KSM_UNTRACKED:
		cand = (struct ksm_cand) { .sig = sig };
		if (ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL))
			break;	/* no memory: try again next pass */
		kmm->mm->ksm_rmap_items++;
		atomic_long_inc(&ksm_stats.tracked);
		break;
	case KSM_CANDIDATE:
		if (cand.sig == sig) {
			/* Unchanged since the last visit: it may merge. */
			cand.age = min_t(unsigned int, cand.age + 1,
					 KSM_CAND_AGE_MAX);
		} else {
			cand.sig = sig;
			cand.age = 0;
		}
		/* The slot exists: overwriting it allocates nothing. */
		ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
		break;
	case KSM_MERGED:
		break;
	}
	ksm_stats.pages_scanned++;
}

/*
 * Scan one mm from cursor_addr for at most @budget pages.  Tracked pages
 * the walk no longer finds (unmapped, or no longer mergeable) are
 * forgotten on the way.  Return how many pages were visited; *done says
 * whether the mm is finished for this pass.
 */
static unsigned int scan_mm(struct ksm_mm *kmm, unsigned int budget,
			    bool *done)
{
	VMA_ITERATOR(vmi, kmm->mm, cursor_addr);
	unsigned long addr = cursor_addr;
	struct vm_area_struct *vma;
	struct ksm_batch *b = &batch;
	unsigned int seen = 0, i;
	int err;

	*done = false;
	for_each_vma(vmi, vma) {
		unsigned long start = max(addr, vma->vm_start);

		ksm_mm_forget_range(kmm, addr, start);
		addr = start;
		if (!(vma->vm_flags & VM_MERGEABLE) || !vma->anon_vma) {
			ksm_mm_forget_range(kmm, addr, vma->vm_end);
			addr = vma->vm_end;
			continue;
		}
		while (addr < vma->vm_end) {
			if (seen >= budget) {
				cursor_addr = addr;
				return seen;
			}
			b->nr = 0;
			b->max = min_t(unsigned int, KSM_BATCH, budget - seen);
			b->next = vma->vm_end;
			err = walk_page_range_vma(vma, addr, vma->vm_end,
						  &batch_ops, b);
			for (i = 0; i < b->nr; i++) {
				ksm_mm_forget_range(kmm, addr, b->addr[i]);
				visit_page(kmm, b->addr[i], b->folio[i]);
				folio_put(b->folio[i]);
				addr = b->addr[i] + PAGE_SIZE;
			}
			seen += b->nr;
			if (err < 0) {
				/* Not walked: no reason to forget what is there. */
				addr = vma->vm_end;
				break;
			}
			ksm_mm_forget_range(kmm, addr, b->next);
			addr = b->next;
			cond_resched();
		}
	}
	ksm_mm_forget_range(kmm, addr, ULONG_MAX);
	*done = true;
	return seen;
}

/* Move the cursor past @kmm, which must still be listed. */
static void advance_cursor(struct ksm_mm *kmm)
{
	lockdep_assert_held(&ksm_mm_lock);
	if (cursor != kmm)
		return;
	cursor_addr = 0;
	if (!list_is_last(&kmm->scan, &ksm_mm_list)) {
		cursor = list_next_entry(kmm, scan);
		return;
	}
	cursor = NULL;
	ksm_stats.full_scans++;
	trace_ksm_stop_scan(scan_seq, atomic_long_read(&ksm_stats.tracked));
	scan_seq++;
}

/**
 * ksm_scan_mm_gone() - an mm leaves the registry
 * @kmm: the registered mm, still listed
 *
 * Context: ksm_mm_lock held.
 */
void ksm_scan_mm_gone(struct ksm_mm *kmm)
{
	advance_cursor(kmm);
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
	unsigned int seen;
	bool got, done;

	lockdep_assert_held(&ksm_lock);
	while (budget) {
		spin_lock(&ksm_mm_lock);
		if (!cursor) {
			if (list_empty(&ksm_mm_list)) {
				spin_unlock(&ksm_mm_lock);
				return;
			}
			cursor = list_first_entry(&ksm_mm_list, struct ksm_mm, scan);
			cursor_addr = 0;
			trace_ksm_start_scan(scan_seq,
					     atomic_long_read(&ksm_stats.tracked));
		}
		kmm = cursor;
		mm = kmm->mm;
		/* A user reference keeps __ksm_exit() and kmm's freeing away. */
		got = mmget_not_zero(mm);
		spin_unlock(&ksm_mm_lock);

		done = true;
		seen = 0;
		if (got) {
			mmap_read_lock(mm);
			seen = scan_mm(kmm, budget, &done);
			mmap_read_unlock(mm);
		}
		budget -= min(seen, budget);

		spin_lock(&ksm_mm_lock);
		if (done)
			advance_cursor(kmm);
		if (got)
			mmput_async(mm);	/* async: we hold ksm_lock */
		done = !cursor;
		spin_unlock(&ksm_mm_lock);
		if (done)
			return;
	}
}
