// SPDX-License-Identifier: GPL-2.0
/*
 * KSM unmerging: give the pages of a range that map a KSM page, or the
 * zero page KSM put there, private copies again.  The fault handler does
 * the copying (an unsharing fault), as it does for any shared anonymous
 * page; the slots of the range are left for ksmd's next visit.
 */
#include <linux/ksm.h>
#include <linux/mm.h>
#include <linux/pagewalk.h>
#include <linux/sched/signal.h>
#include <linux/swap.h>
#include <linux/swapops.h>

#include "ksm.h"

struct find_ksm {
	unsigned long found;	/* address of a KSM mapping, if any */
};

static int find_pmd_entry(pmd_t *pmd, unsigned long addr, unsigned long next,
			  struct mm_walk *walk)
{
	pmd_t val = pmdp_get_lockless(pmd);

	/* KSM pages are small: a huge mapping holds none. */
	if (!pmd_present(val) || pmd_trans_huge(val))
		walk->action = ACTION_CONTINUE;
	return 0;
}

/*
 * Does @pte map a KSM page, or KSM's zero page?  A KSM page being migrated
 * counts: its migration entry becomes a KSM mapping again, and mremap()
 * would carry it away from where rmap looks for it.  A KSM page stays one
 * until freed, so the entry's page tells without waiting.
 */
static bool pte_maps_ksm(struct vm_area_struct *vma, unsigned long addr,
			 pte_t pte)
{
	struct page *page;

	if (!pte_present(pte)) {
		swp_entry_t entry;

		if (pte_none(pte))
			return false;
		entry = pte_to_swp_entry(pte);
		return is_migration_entry(entry) &&
		       folio_test_ksm(pfn_swap_entry_folio(entry));
	}
	if (is_ksm_zero_pte(pte))
		return true;
	page = vm_normal_page(vma, addr, pte);
	return page && folio_test_ksm(page_folio(page));
}

static int find_pte_entry(pte_t *pte, unsigned long addr, unsigned long next,
			  struct mm_walk *walk)
{
	struct find_ksm *f = walk->private;

	if (!pte_maps_ksm(walk->vma, addr, ptep_get(pte)))
		return 0;
	f->found = addr;
	return 1;
}

static const struct mm_walk_ops find_ops = {
	.pmd_entry	= find_pmd_entry,
	.pte_entry	= find_pte_entry,
	.walk_lock	= PGWALK_RDLOCK,
};

/* Does @addr of @vma still map a KSM page? */
static bool still_ksm(struct vm_area_struct *vma, unsigned long addr)
{
	struct find_ksm f = { };

	return walk_page_range_vma(vma, addr, addr + PAGE_SIZE, &find_ops,
				   &f) > 0;
}

/*
 * Fault private copies in at @addr until it maps no KSM page; a fault on
 * a migration entry waits for the migration to end.
 */
static int break_one(struct vm_area_struct *vma, unsigned long addr)
{
	vm_fault_t ret;

	do {
		cond_resched();
		ret = handle_mm_fault(vma, addr,
				      FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE,
				      NULL);
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		/* A range that cannot fault has nothing to give back. */
		if (ret & VM_FAULT_ERROR)
			return 0;
	} while (still_ksm(vma, addr));
	return 0;
}

/**
 * ksm_break_range() - unmerge the KSM pages of part of a VMA
 * @vma: the VMA
 * @start: first address
 * @end: end of the range (exclusive)
 *
 * Holes cost nothing: page tables that do not exist are skipped.
 *
 * Context: the mmap lock held, for reading or writing; may sleep.
 * Return: 0, -ENOMEM, or -ERESTARTSYS if a signal came first.
 */
int ksm_break_range(struct vm_area_struct *vma, unsigned long start,
		    unsigned long end)
{
	struct find_ksm f;
	int ret;

	while (start < end) {
		f.found = 0;
		ret = walk_page_range_vma(vma, start, end, &find_ops, &f);
		if (ret <= 0)
			return ret;
		if (signal_pending(current))
			return -ERESTARTSYS;
		ret = break_one(vma, f.found);
		if (ret)
			return ret;
		start = f.found + PAGE_SIZE;
	}
	return 0;
}
