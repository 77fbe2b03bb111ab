// SPDX-License-Identifier: GPL-2.0
/*
 * The hooks the rest of mm/ calls on KSM pages: reverse mapping,
 * migration, memory failure, swap-in.
 *
 * Until the stable tree lands no folio is a KSM page, so the KSM-only hooks
 * have nothing to do; ksm_might_need_to_copy() sees every swapped-in folio
 * and does its whole job already.
 */
#include <linux/ksm.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/swap.h>
#include <linux/vm_event_item.h>

#include "../internal.h"
#include "ksm.h"

/**
 * rmap_walk_ksm() - visit every mapping of a KSM folio
 * @folio: the KSM folio, locked
 * @rwc: what to do at each mapping
 */
void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc)
{
}

/**
 * folio_migrate_ksm() - move KSM state to the folio replacing another
 * @newfolio: the new folio
 * @folio: the old folio
 */
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio)
{
}

/**
 * collect_procs_ksm() - the processes mapping a poisoned KSM page
 * @folio: the KSM folio
 * @page: the poisoned page
 * @to_kill: list to add them to
 * @force_early: kill even processes that did not ask for early kill
 */
void collect_procs_ksm(struct folio *folio, struct page *page,
		       struct list_head *to_kill, int force_early)
{
}

/* Can the swapped-in @folio be mapped as it is at @addr of @vma? */
static bool fits_in_place(struct folio *folio, struct vm_area_struct *vma,
			  unsigned long addr)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);

	if (folio_test_ksm(folio))
		return folio_raw_mapping(folio) &&
		       READ_ONCE(ksm_knobs.run) != KSM_RUN_UNMERGE;
	/* Not anonymous, or a page of this VMA's own anon_vma tree at its index. */
	return !anon_vma ||
	       (folio->index == linear_page_index(vma, addr) &&
		anon_vma->root == vma->anon_vma->root);
}

/**
 * ksm_might_need_to_copy() - a private copy for swap-in, where needed
 * @folio: the folio found in the swap cache, locked
 * @vma: the VMA faulting it in
 * @addr: the faulting address
 *
 * A page that was a KSM page, or that another process's anon_vma owns,
 * cannot simply be mapped here: do_swap_page() then maps a copy, and
 * ksmd may merge it again later.
 *
 * Return: @folio when it can be mapped as it is, a new locked copy, NULL
 * when no memory could be had, or ERR_PTR(-EHWPOISON).
 */
struct folio *ksm_might_need_to_copy(struct folio *folio,
				     struct vm_area_struct *vma,
				     unsigned long addr)
{
	struct folio *copy;

	if (folio_test_large(folio) || fits_in_place(folio, vma, addr))
		return folio;
	if (PageHWPoison(folio_page(folio, 0)))
		return ERR_PTR(-EHWPOISON);
	if (!folio_test_uptodate(folio))
		return folio;	/* do_swap_page() reports the I/O error */

	copy = vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0, vma, addr, false);
	if (!copy)
		return NULL;
	if (mem_cgroup_charge(copy, vma->vm_mm, GFP_KERNEL)) {
		folio_put(copy);
		return NULL;
	}
	if (copy_mc_user_highpage(folio_page(copy, 0), folio_page(folio, 0),
				  addr, vma)) {
		folio_put(copy);
		return ERR_PTR(-EHWPOISON);
	}
	folio_set_dirty(copy);
	__folio_mark_uptodate(copy);
	__folio_set_locked(copy);
#ifdef CONFIG_SWAP
	count_vm_event(KSM_SWPIN_COPY);
#endif
	return copy;
}
