// SPDX-License-Identifier: GPL-2.0
/*
 * KSM registry: which mms and which of their VMAs KSM may merge, entered
 * through madvise(), prctl(), fork, execve and exit.
 */
#include <linux/hashtable.h>
#include <linux/ksm.h>
#include <linux/mman.h>
#include <linux/mm.h>
#include <linux/pagewalk.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <trace/events/ksm.h>

#include "ksm.h"

/* Guards the hash, the lists and the scan cursor's choice of mm. */
DEFINE_SPINLOCK(ksm_mm_lock);
LIST_HEAD(ksm_mm_list);
LIST_HEAD(ksm_dead_list);		/* exited, pages not yet forgotten */
static LIST_HEAD(ksm_graveyard);	/* forgotten, freed at pass end */
static DEFINE_HASHTABLE(ksm_mm_hash, 10);
static struct kmem_cache *ksm_mm_cache;

/* Where ksmd's scan stands in ksm_mm_list (ksm.h). */
struct ksm_cursor ksm_cursor;

/* Start a pass at the first mm of @list; false if there is none. */
static bool cursor_start(struct ksm_cursor *c, struct list_head *list)
{
	c->addr = 0;
	c->mergeable = false;
	c->kmm = list_first_entry_or_null(list, struct ksm_mm, scan);
	return c->kmm;
}

/*
 * Move past @kmm, still on @list, if the cursor is on it: to the next mm,
 * or past the last to the end of the pass.
 */
static void cursor_advance(struct ksm_cursor *c, struct list_head *list,
			   struct ksm_mm *kmm)
{
	if (c->kmm != kmm)
		return;
	c->addr = 0;
	c->mergeable = false;
	if (!list_is_last(&kmm->scan, list)) {
		c->kmm = list_next_entry(kmm, scan);
		return;
	}
	c->kmm = NULL;
	c->pass_over = true;
	c->passes++;
}

/* Take the news of an ended pass, once. */
static bool cursor_pass_ended(struct ksm_cursor *c)
{
	bool ended = c->pass_over;

	c->pass_over = false;
	return ended;
}

/**
 * ksm_cursor_start() - start a pass at the first registered mm
 *
 * Context: ksm_mm_lock held.
 * Return: false if no mm is registered.
 */
bool ksm_cursor_start(void)
{
	lockdep_assert_held(&ksm_mm_lock);
	return cursor_start(&ksm_cursor, &ksm_mm_list);
}

/**
 * ksm_cursor_advance() - move the cursor past an mm, if it is on it
 * @kmm: the mm, still listed
 *
 * A pass this ends is counted by ksmd (ksm_cursor_pass_ended()), not by
 * an exiting task.
 *
 * Context: ksm_mm_lock held.
 */
void ksm_cursor_advance(struct ksm_mm *kmm)
{
	lockdep_assert_held(&ksm_mm_lock);
	cursor_advance(&ksm_cursor, &ksm_mm_list, kmm);
}

/**
 * ksm_cursor_pass_ended() - take the news of an ended pass, once
 *
 * Context: ksm_mm_lock held.
 * Return: true if a pass ended since the last call.
 */
bool ksm_cursor_pass_ended(void)
{
	lockdep_assert_held(&ksm_mm_lock);
	return cursor_pass_ended(&ksm_cursor);
}

/**
 * ksm_cursor_reset() - drop the pass under way; the next starts afresh
 */
void ksm_cursor_reset(void)
{
	spin_lock(&ksm_mm_lock);
	ksm_cursor.kmm = NULL;
	ksm_cursor.addr = 0;
	ksm_cursor.pass_over = false;
	spin_unlock(&ksm_mm_lock);
}

/**
 * ksm_registry_init() - set up the registry at boot
 *
 * Return: 0, or -ENOMEM.
 */
int __init ksm_registry_init(void)
{
	ksm_mm_cache = KMEM_CACHE(ksm_mm, 0);
	return ksm_mm_cache ? 0 : -ENOMEM;
}

static struct ksm_mm *ksm_mm_find(struct mm_struct *mm)
{
	struct ksm_mm *kmm;

	lockdep_assert_held(&ksm_mm_lock);
	hash_for_each_possible(ksm_mm_hash, kmm, hash, (unsigned long)mm)
		if (kmm->mm == mm)
			return kmm;
	return NULL;
}

/**
 * __ksm_enter() - register an mm with KSM
 * @mm: the mm, which gets MMF_VM_MERGEABLE
 *
 * Return: 0, or -ENOMEM.
 */
int __ksm_enter(struct mm_struct *mm)
{
	struct ksm_mm *kmm;
	bool was_idle;

	kmm = kmem_cache_zalloc(ksm_mm_cache, GFP_KERNEL);
	if (!kmm)
		return -ENOMEM;
	kmm->mm = mm;
	xa_init(&kmm->pages);
	mmgrab(mm);

	spin_lock(&ksm_mm_lock);
	was_idle = list_empty(&ksm_mm_list);
	hash_add(ksm_mm_hash, &kmm->hash, (unsigned long)mm);
	/* At the end: a new mm is seen in the pass under way. */
	list_add_tail(&kmm->scan, &ksm_mm_list);
	spin_unlock(&ksm_mm_lock);

	set_bit(MMF_VM_MERGEABLE, &mm->flags);
	if (was_idle)
		ksm_daemon_wake();
	trace_ksm_enter(mm);
	return 0;
}

/**
 * __ksm_exit() - an mm that is going away leaves the registry
 * @mm: the mm, whose last user is gone
 *
 * ksmd only works on an mm it holds a user reference to, so it is not in
 * this mm now and will not enter it again once the mm is off the list.
 * Forgetting the mm's pages needs ksm_lock, which exit must not wait for:
 * ksmd does it, soon.
 */
void __ksm_exit(struct mm_struct *mm)
{
	struct ksm_mm *kmm;

	spin_lock(&ksm_mm_lock);
	kmm = ksm_mm_find(mm);
	if (kmm) {
		ksm_cursor_advance(kmm);	/* while kmm is still listed */
		hash_del(&kmm->hash);
		list_move_tail(&kmm->scan, &ksm_dead_list);
		WRITE_ONCE(kmm->dead, true);
	}
	spin_unlock(&ksm_mm_lock);

	if (kmm)
		ksm_daemon_wake();
	clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
	clear_bit(MMF_VM_MERGEABLE, &mm->flags);
	trace_ksm_exit(mm);
}

static void kmm_free(struct ksm_mm *kmm)
{
	mmdrop(kmm->mm);
	kmem_cache_free(ksm_mm_cache, kmm);
}

/**
 * ksm_reap_dead() - forget the pages of the mms that exited, and free them
 *
 * An mm that unstable nodes still name waits for the end of the pass.
 *
 * Context: ksm_lock held.
 */
void ksm_reap_dead(void)
{
	struct ksm_mm *kmm, *next;
	LIST_HEAD(dead);

	lockdep_assert_held(&ksm_lock);
	spin_lock(&ksm_mm_lock);
	list_splice_init(&ksm_dead_list, &dead);
	spin_unlock(&ksm_mm_lock);
	list_for_each_entry_safe(kmm, next, &dead, scan) {
		ksm_mm_forget_range(kmm, 0, ULONG_MAX);
		xa_destroy(&kmm->pages);
		list_del(&kmm->scan);
		if (kmm->unodes)
			list_add_tail(&kmm->scan, &ksm_graveyard);
		else
			kmm_free(kmm);
	}
}

/**
 * ksm_mm_retire() - an mm left with no mergeable VMA leaves the registry
 * @kmm: the registered mm, a user of which the caller holds; its pages
 *	 forgotten by the scan that found none mergeable
 *
 * As in 6.12, so that ksmd sleeps when nothing is left to merge; the mm
 * enters again with its next mergeable VMA.  Under the mmap lock, so that
 * no madvise() or prctl() finds it registered while it leaves.
 *
 * Context: ksm_lock held.
 * Return: true if @kmm is gone (freed, or left for the end of the pass).
 */
bool ksm_mm_retire(struct ksm_mm *kmm)
{
	struct mm_struct *mm = kmm->mm;

	lockdep_assert_held(&ksm_lock);
	mmap_read_lock(mm);
	if (ksm_process_mergeable(mm)) {
		mmap_read_unlock(mm);
		return false;
	}
	spin_lock(&ksm_mm_lock);
	ksm_cursor_advance(kmm);
	hash_del(&kmm->hash);
	list_del(&kmm->scan);
	/* Unstable nodes that name it are stale from now on. */
	WRITE_ONCE(kmm->dead, true);
	spin_unlock(&ksm_mm_lock);
	/* Not MMF_VM_MERGE_ANY: its next VMA registers the mm again. */
	clear_bit(MMF_VM_MERGEABLE, &mm->flags);
	mmap_read_unlock(mm);

	ksm_mm_forget_range(kmm, 0, ULONG_MAX);
	xa_destroy(&kmm->pages);
	if (kmm->unodes)
		list_add_tail(&kmm->scan, &ksm_graveyard);
	else
		kmm_free(kmm);
	return true;
}

/**
 * ksm_mm_put_unode() - an unstable node that named an mm is gone
 * @kmm: the mm it named
 *
 * Context: ksm_lock held.
 */
void ksm_mm_put_unode(struct ksm_mm *kmm)
{
	lockdep_assert_held(&ksm_lock);
	WARN_ON_ONCE(!kmm->unodes);
	kmm->unodes--;
}

/**
 * ksm_free_graveyard() - free the exited mms, at the end of a pass
 *
 * Context: ksm_lock held, the unstable tree empty.
 */
void ksm_free_graveyard(void)
{
	struct ksm_mm *kmm, *next;

	lockdep_assert_held(&ksm_lock);
	list_for_each_entry_safe(kmm, next, &ksm_graveyard, scan) {
		WARN_ON_ONCE(kmm->unodes);
		list_del(&kmm->scan);
		kmm_free(kmm);
	}
}

/**
 * ksm_mm_forget_range() - stop tracking the pages of a range
 * @kmm: the registered mm
 * @start: first address
 * @end: end of the range (exclusive)
 *
 * Merged pages stop counting as sharers of their KSM pages.
 *
 * Context: ksm_lock held; may sleep.
 * Return: how many tracked pages were forgotten.
 */
unsigned long ksm_mm_forget_range(struct ksm_mm *kmm, unsigned long start,
				  unsigned long end)
{
	unsigned long index, n = 0;
	void *entry;

	lockdep_assert_held(&ksm_lock);
	if (end <= start)
		return 0;
	xa_for_each_range(&kmm->pages, index, entry, start >> PAGE_SHIFT,
			  (end - 1) >> PAGE_SHIFT) {
		if (!xa_is_value(entry))
			ksm_stable_drop(entry);
		ksm_track_forget(&kmm->pages, index << PAGE_SHIFT);
		/* An exiting mm of millions of pages must not hog the CPU. */
		if (!(++n % 512))
			cond_resched();
	}
	if (n) {
		kmm->mm->ksm_rmap_items -= n;
		atomic_long_sub(n, &ksm_stats.tracked);
	}
	return n;
}

/**
 * ksm_vma() - the VMA KSM may merge in at an address
 * @mm: the mm, whose mmap lock is held
 * @addr: the address
 *
 * Return: the VMA, mergeable and with an anon_vma; or NULL.
 */
struct vm_area_struct *ksm_vma(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma = vma_lookup(mm, addr);

	if (!vma || !(vma->vm_flags & VM_MERGEABLE) || !vma->anon_vma)
		return NULL;
	return vma;
}

/**
 * ksm_lookup_page() - the anonymous page mapped at an address
 * @vma: the VMA, whose mm's mmap lock is held
 * @addr: the address
 *
 * Return: the page, referenced; NULL if none is mapped there, or if it is
 * a KSM page, device memory or not anonymous.
 */
struct page *ksm_lookup_page(struct vm_area_struct *vma, unsigned long addr)
{
	struct folio_walk fw;
	struct folio *folio;
	struct page *page = NULL;

	folio = folio_walk_start(&fw, vma, addr, 0);
	if (!folio)
		return NULL;
	if (folio_test_anon(folio) && !folio_test_ksm(folio) &&
	    !folio_is_zone_device(folio)) {
		page = fw.page;
		folio_get(folio);
	}
	folio_walk_end(&fw, vma);
	return page;
}

/*
 * The VMAs KSM may merge: private anonymous memory of ordinary pages.
 * Advice on any other VMA is accepted and ignored, as in 6.12.
 */
static bool vma_mergeable_kind(struct vm_area_struct *vma)
{
	if (vma->vm_flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO |
			     VM_DONTEXPAND | VM_HUGETLB | VM_MIXEDMAP |
			     VM_DROPPABLE))
		return false;
	if (vma_is_dax(vma))
		return false;
#ifdef VM_SAO
	if (vma->vm_flags & VM_SAO)
		return false;
#endif
#ifdef VM_SPARC_ADI
	if (vma->vm_flags & VM_SPARC_ADI)
		return false;
#endif
	return true;
}

/* Give back private copies of the KSM pages of a range. */
static int unmerge_range(struct vm_area_struct *vma, unsigned long start,
			 unsigned long end)
{
	/* Their slots go when ksmd next finds the range unmergeable. */
	return ksm_break_range(vma, start, end);
}

/**
 * ksm_madvise() - MADV_MERGEABLE and MADV_UNMERGEABLE on a VMA
 * @vma: the VMA
 * @start: start of the advised part
 * @end: end of the advised part
 * @advice: MADV_MERGEABLE or MADV_UNMERGEABLE
 * @vm_flags: the VMA's flags to be, updated here
 *
 * Context: mmap lock held for writing.
 * Return: 0, or -ENOMEM, -EINTR, -EAGAIN.
 */
int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, unsigned long *vm_flags)
{
	struct mm_struct *mm = vma->vm_mm;
	int err;

	switch (advice) {
	case MADV_MERGEABLE:
		if ((vma->vm_flags & VM_MERGEABLE) || !vma_mergeable_kind(vma))
			return 0;
		if (!test_bit(MMF_VM_MERGEABLE, &mm->flags)) {
			err = __ksm_enter(mm);
			if (err)
				return err;
		}
		*vm_flags |= VM_MERGEABLE;
		break;
	case MADV_UNMERGEABLE:
		if (!(*vm_flags & VM_MERGEABLE))
			return 0;
		if (vma->anon_vma) {
			err = unmerge_range(vma, start, end);
			if (err)
				return err;
		}
		*vm_flags &= ~VM_MERGEABLE;
		break;
	}
	return 0;
}

static void mark_vma_mergeable(struct vm_area_struct *vma)
{
	if (!(vma->vm_flags & VM_MERGEABLE) && vma_mergeable_kind(vma))
		vm_flags_set(vma, VM_MERGEABLE);
}

/**
 * ksm_add_vma() - a new VMA of a process that merges everything
 * @vma: the VMA, whose mm may have MMF_VM_MERGE_ANY
 */
void ksm_add_vma(struct vm_area_struct *vma)
{
	struct mm_struct *mm = vma->vm_mm;

	if (!test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return;
	mark_vma_mergeable(vma);
	if (!test_bit(MMF_VM_MERGEABLE, &mm->flags))
		__ksm_enter(mm);	/* best effort, as at fork */
}

/**
 * ksm_enable_merge_any() - prctl(PR_SET_MEMORY_MERGE, 1)
 * @mm: the mm, write-locked
 *
 * Return: 0, or -ENOMEM.
 */
int ksm_enable_merge_any(struct mm_struct *mm)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int err;

	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return 0;
	if (!test_bit(MMF_VM_MERGEABLE, &mm->flags)) {
		err = __ksm_enter(mm);
		if (err)
			return err;
	}
	set_bit(MMF_VM_MERGE_ANY, &mm->flags);
	for_each_vma(vmi, vma)
		mark_vma_mergeable(vma);
	return 0;
}

static int unmerge_vma(struct vm_area_struct *vma)
{
	int err;

	if (!(vma->vm_flags & VM_MERGEABLE))
		return 0;
	if (vma->anon_vma) {
		err = unmerge_range(vma, vma->vm_start, vma->vm_end);
		if (err)
			return err;
	}
	vm_flags_clear(vma, VM_MERGEABLE);
	return 0;
}

static int unmerge_all_vmas(struct mm_struct *mm)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int err;

	for_each_vma(vmi, vma) {
		err = unmerge_vma(vma);
		if (err)
			return err;
	}
	return 0;
}

/**
 * ksm_disable_merge_any() - prctl(PR_SET_MEMORY_MERGE, 0)
 * @mm: the mm, write-locked
 *
 * Unmerges every VMA; on failure the VMAs are mergeable again.
 *
 * Return: 0, or the error of unmerging.
 */
int ksm_disable_merge_any(struct mm_struct *mm)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int err;

	if (!test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return 0;
	err = unmerge_all_vmas(mm);
	if (err) {
		for_each_vma(vmi, vma)
			mark_vma_mergeable(vma);
		return err;
	}
	clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
	return 0;
}

/**
 * ksm_disable() - stop merging in an mm altogether
 * @mm: the mm, write-locked
 *
 * Return: 0, or the error of unmerging.
 */
int ksm_disable(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);
	/* Merge-any goes as a whole; otherwise the VMAs marked one by one. */
	if (test_bit(MMF_VM_MERGE_ANY, &mm->flags))
		return ksm_disable_merge_any(mm);
	return test_bit(MMF_VM_MERGEABLE, &mm->flags) ? unmerge_all_vmas(mm) : 0;
}

/* Unmerge every mergeable VMA of @mm, whose mmap lock is held. */
static int unmerge_mm(struct mm_struct *mm)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;
	int err;

	for_each_vma(vmi, vma) {
		if (!(vma->vm_flags & VM_MERGEABLE) || !vma->anon_vma)
			continue;
		err = ksm_break_range(vma, vma->vm_start, vma->vm_end);
		if (err)
			return err;
	}
	return 0;
}

/**
 * ksm_unmerge_all() - run=2: unmerge every registered mm, forget its pages
 *
 * Context: ksm_lock held.
 * Return: 0, or the error of unmerging.
 */
int ksm_unmerge_all(void)
{
	struct ksm_mm *kmm;
	struct mm_struct *mm;
	int err = 0;

	lockdep_assert_held(&ksm_lock);
	spin_lock(&ksm_mm_lock);
	list_for_each_entry(kmm, &ksm_mm_list, scan) {
		mm = kmm->mm;
		if (!mmget_not_zero(mm))
			continue;
		/* While we hold a user, __ksm_exit() cannot unlist kmm. */
		spin_unlock(&ksm_mm_lock);
		mmap_read_lock(mm);
		err = unmerge_mm(mm);
		mmap_read_unlock(mm);
		if (!err)
			ksm_mm_forget_range(kmm, 0, ULONG_MAX);
		spin_lock(&ksm_mm_lock);
		/* Async, so allowed here; kmm->scan.next is read under the lock. */
		mmput_async(mm);
		if (err)
			break;
	}
	spin_unlock(&ksm_mm_lock);
	return err;
}

/**
 * ksm_process_mergeable() - may KSM merge anything of a process now?
 * @mm: the process's mm, whose mmap lock is held
 *
 * For /proc/<pid>/ksm_stat.
 *
 * Return: true if some VMA of @mm is mergeable.
 */
bool ksm_process_mergeable(struct mm_struct *mm)
{
	VMA_ITERATOR(vmi, mm, 0);
	struct vm_area_struct *vma;

	mmap_assert_locked(mm);
	for_each_vma(vmi, vma)
		if (vma->vm_flags & VM_MERGEABLE)
			return true;
	return false;
}

/**
 * ksm_process_profit() - what KSM saves one process, in bytes
 * @mm: the process's mm
 *
 * Return: bytes of pages merged or mapped to the zero page, less the bytes
 * of KSM's metadata for the pages it tracks.
 */
long ksm_process_profit(struct mm_struct *mm)
{
	return (long)(mm->ksm_merging_pages + mm_ksm_zero_pages(mm)) * PAGE_SIZE -
	       mm->ksm_rmap_items * KSM_TRACKED_BYTES;
}

#ifdef CONFIG_KSM_KUNIT_TEST
#include "tests/registry-kunit.h"
#endif
