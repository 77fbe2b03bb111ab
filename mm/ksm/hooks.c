// SPDX-License-Identifier: GPL-2.0
/*
 * The hooks the rest of mm/ calls on KSM pages: reverse mapping,
 * migration, memory failure, swap-in.
 *
 * A KSM folio's ->mapping names its stable node; the node's sharers say
 * where it is mapped.
 */
#include <linux/ksm.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/swap.h>
#include <linux/vm_event_item.h>

#include "../internal.h"
#include "ksm.h"

/*
 * Visit the VMAs of @anon_vma that cover @addr: those of @mm first (pass
 * 0), then those of its forked children (pass 1).  Return false to stop.
 */
static bool walk_sharer(struct folio *folio, struct rmap_walk_control *rwc,
			struct ksm_sharer *sh, int pass)
{
	struct anon_vma *anon_vma = sh->anon_vma;
	struct anon_vma_chain *avc;
	unsigned long addr = ksm_sharer_addr(sh);

	if (rwc->try_lock) {
		if (!anon_vma_trylock_read(anon_vma)) {
			rwc->contended = true;
			return false;
		}
	} else {
		anon_vma_lock_read(anon_vma);
	}
	anon_vma_interval_tree_foreach(avc, &anon_vma->rb_root, 0, ULONG_MAX) {
		struct vm_area_struct *vma = avc->vma;

		cond_resched();
		if (pass ? vma->vm_mm == sh->kmm->mm : vma->vm_mm != sh->kmm->mm)
			continue;
		if (addr < vma->vm_start || addr >= vma->vm_end)
			continue;
		if (rwc->invalid_vma && rwc->invalid_vma(vma, rwc->arg))
			continue;
		if (!rwc->rmap_one(folio, vma, addr, rwc->arg) ||
		    (rwc->done && rwc->done(folio))) {
			anon_vma_unlock_read(anon_vma);
			return false;
		}
	}
	anon_vma_unlock_read(anon_vma);
	return true;
}

/**
 * rmap_walk_ksm() - visit every mapping of a KSM folio
 * @folio: the KSM folio, locked
 * @rwc: what to do at each mapping
 *
 * A KSM page is mapped where its sharers are, and where forked children
 * of theirs inherited it at the same address.
 */
void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc)
{
	struct ksm_stable *s;
	unsigned int i;
	int pass;

	/* The folio lock keeps the sharers as they are. */
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	s = ksm_folio_stable(folio);
	if (!s)
		return;
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < s->nr; i++)
			if (!walk_sharer(folio, rwc, &s->sharers[i], pass))
				return;
}

/**
 * folio_migrate_ksm() - move KSM state to the folio replacing another
 * @newfolio: the new folio, which took over ->mapping
 * @folio: the old folio
 *
 * Context: both folios locked.
 */
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio)
{
	struct ksm_stable *s;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(newfolio), newfolio);
	s = ksm_folio_stable(folio);
	if (!s)
		return;
	VM_WARN_ON_ONCE_FOLIO(READ_ONCE(s->kpfn) != folio_pfn(folio), folio);
	WRITE_ONCE(s->kpfn, folio_pfn(newfolio));
	/* Readers that saw the old pfn check it again after this. */
	smp_wmb();
	WRITE_ONCE(folio->mapping, (void *)PAGE_MAPPING_KSM);
}

/**
 * collect_procs_ksm() - the processes mapping a poisoned KSM page
 * @folio: the KSM folio, locked
 * @page: the poisoned page
 * @to_kill: list to add them to
 * @force_early: kill even processes that did not ask for early kill
 */
void collect_procs_ksm(struct folio *folio, struct page *page,
		       struct list_head *to_kill, int force_early)
{
#ifdef CONFIG_MEMORY_FAILURE
	struct ksm_stable *s = ksm_folio_stable(folio);
	struct anon_vma_chain *avc;
	struct task_struct *tsk, *t;
	unsigned int i;

	if (!s)
		return;
	for (i = 0; i < s->nr; i++) {
		struct anon_vma *anon_vma = s->sharers[i].anon_vma;
		unsigned long addr = ksm_sharer_addr(&s->sharers[i]);

		anon_vma_lock_read(anon_vma);
		rcu_read_lock();
		for_each_process(tsk) {
			t = task_early_kill(tsk, force_early);
			if (!t)
				continue;
			anon_vma_interval_tree_foreach(avc, &anon_vma->rb_root,
						       0, ULONG_MAX) {
				struct vm_area_struct *vma = avc->vma;

				if (vma->vm_mm == t->mm &&
				    addr >= vma->vm_start && addr < vma->vm_end)
					add_to_kill_ksm(t, page, vma, to_kill,
							addr);
			}
		}
		rcu_read_unlock();
		anon_vma_unlock_read(anon_vma);
	}
#endif
}

/* Can the swapped-in @folio be mapped as it is at @addr of @vma? */
static bool fits_in_place(struct folio *folio, struct vm_area_struct *vma,
			  unsigned long addr)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);

	/*
	 * A KSM page goes back in place only where rmap will find it: not
	 * after mremap() carried its swap entry elsewhere, nor in a range
	 * that stopped being mergeable and whose slots were forgotten.
	 */
	if (folio_test_ksm(folio))
		return folio_raw_mapping(folio) &&
		       READ_ONCE(ksm_knobs.run) != KSM_RUN_UNMERGE &&
		       ksm_stable_maps(ksm_folio_stable(folio), vma, addr);
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
