// SPDX-License-Identifier: GPL-2.0
/*
 * KSM merging: what ksmd does with a page that stopped changing.  It
 * looks for the contents in the stable tree, then in the unstable tree;
 * a match is merged by write-protecting the page, checking the contents
 * again and mapping the KSM page (or the zero page) in its place.
 *
 * Locks: one mmap lock at a time, taken (for reading) before folio locks;
 * of two folio locks, the second is only tried.
 */
#include <linux/highmem.h>
#include <linux/huge_mm.h>
#include <linux/ksm.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/pagewalk.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/swap.h>
#include <trace/events/ksm.h>

#include "../internal.h"
#include "ksm.h"

/*
 * Write-protect the mapping of @page at @addr, so that its contents stay
 * as they are while it is compared and merged; *@orig gets the pte.
 * Fails if anyone but its mappings and us holds the page (GUP, DMA).
 */
static int wrprotect_pte(struct vm_area_struct *vma, unsigned long addr,
			 struct folio *folio, struct page *page, pte_t *orig,
			 unsigned int pinned)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	int err = -EAGAIN;
	bool exclusive;
	pte_t pte;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, addr,
				addr + PAGE_SIZE);
	/* Secondary MMUs (KVM) must drop their writable mappings too. */
	mmu_notifier_invalidate_range_start(&range);
	if (!page_vma_mapped_walk(&pvmw))
		goto out;
	if (WARN_ONCE(!pvmw.pte, "ksm: pmd-mapped folio"))
		goto out_unlock;

	pte = ptep_get(pvmw.pte);
	exclusive = PageAnonExclusive(page);
	if (pte_write(pte) || pte_dirty(pte) || exclusive ||
	    mm_tlb_flush_pending(mm)) {
		/* Ours: the caller's reference, and pins of its own. */
		int extra = 1 + pinned + folio_test_swapcache(folio);

		flush_cache_page(vma, addr, pte_pfn(pte));
		pte = ptep_clear_flush(vma, addr, pvmw.pte);
		/* With the pte gone, no new GUP reference can appear. */
		if (folio_mapcount(folio) + extra != folio_ref_count(folio) ||
		    (exclusive && folio_try_share_anon_rmap_pte(folio, page))) {
			set_pte_at(mm, addr, pvmw.pte, pte);
			goto out_unlock;
		}
		if (pte_dirty(pte))
			folio_mark_dirty(folio);
		pte = pte_mkclean(pte_wrprotect(pte));
		set_pte_at(mm, addr, pvmw.pte, pte);
	}
	*orig = pte;
	err = 0;
out_unlock:
	page_vma_mapped_walk_done(&pvmw);
out:
	mmu_notifier_invalidate_range_end(&range);
	return err;
}

/*
 * Map @kpage, or the zero page if @kpage is NULL, where @page was mapped
 * at @addr with pte @orig; drop @page's mapping.
 */
static int replace_pte(struct vm_area_struct *vma, unsigned long addr,
		       struct page *page, struct page *kpage, pte_t orig)
{
	struct folio *folio = page_folio(page);
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	pte_t *ptep, pte;
	spinlock_t *ptl;	/* the page table lock */
	int err = -EAGAIN;
	pmd_t *pmd;

	pmd = mm_find_pmd(mm, addr);
	if (!pmd)
		return err;
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, addr,
				addr + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptep = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!ptep)
		goto out;
	if (!pte_same(ptep_get(ptep), orig)) {
		pte_unmap_unlock(ptep, ptl);
		goto out;
	}

	if (kpage) {
		struct folio *kfolio = page_folio(kpage);

		folio_get(kfolio);
		folio_add_anon_rmap_pte(kfolio, kpage, vma, addr, RMAP_NONE);
		pte = pte_wrprotect(mk_pte(kpage, vma->vm_page_prot));
	} else {
		/* Dirty tells KSM's zero pages from the others. */
		pte = pte_mkdirty(pte_mkspecial(pfn_pte(my_zero_pfn(addr),
							vma->vm_page_prot)));
		ksm_map_zero_page(mm);
		dec_mm_counter(mm, MM_ANONPAGES);
	}
	if (pte_uffd_wp(orig))
		pte = pte_mkuffd_wp(pte);
	if (pte_soft_dirty(orig))
		pte = pte_mksoft_dirty(pte);

	flush_cache_page(vma, addr, pte_pfn(orig));
	ptep_clear_flush(vma, addr, ptep);
	set_pte_at(mm, addr, ptep, pte);

	folio_remove_rmap_pte(folio, page, vma);
	if (!folio_mapped(folio))
		folio_free_swap(folio);
	folio_put(folio);	/* the mapping's reference */
	pte_unmap_unlock(ptep, ptl);
	err = 0;
out:
	mmu_notifier_invalidate_range_end(&range);
	return err;
}

/* Lock @page's folio, split to a small one; NULL if it cannot be had. */
static struct folio *lock_small(struct page *page)
{
	struct folio *folio = page_folio(page);

	if (!folio_trylock(folio))
		return NULL;
	if (folio_test_large(folio)) {
		/* The lock and our reference go with @page. */
		if (split_huge_page(page)) {
			folio_unlock(folio);
			return NULL;
		}
		folio = page_folio(page);
	}
	if (!folio_test_anon(folio) || folio_test_ksm(folio)) {
		folio_unlock(folio);
		return NULL;
	}
	return folio;
}

static bool page_is_zero(struct page *page)
{
	void *addr = kmap_local_page(page);
	bool zero = !memchr_inv(addr, 0, PAGE_SIZE);

	kunmap_local(addr);
	return zero;
}

/*
 * Merge @page, mapped at @addr of @vma, into @kpage (its folio locked by
 * the caller), or into the zero page if @kpage is NULL.  @pinned: more
 * references to @page that the caller holds.
 */
static int merge_into(struct vm_area_struct *vma, unsigned long addr,
		      struct page *page, struct page *kpage, unsigned int pinned)
{
	struct folio *folio = lock_small(page);
	int err = -EAGAIN;
	pte_t orig;

	if (!folio)
		return err;
	if (wrprotect_pte(vma, addr, folio, page, &orig, pinned))
		goto unlock;
	/* Write-protected now: what we compare is what gets shared. */
	if (kpage ? pages_identical(page, kpage) : page_is_zero(page))
		err = replace_pte(vma, addr, page, kpage, orig);
	/*
	 * MADV_FREE may have made a KSM page of one mapping lazy and clean:
	 * now that it holds this page's data too, reclaim must not drop it.
	 * Its lock, held, keeps MADV_FREE off until the new mapping counts.
	 */
	if (!err && kpage)
		folio_mark_dirty(page_folio(kpage));
unlock:
	folio_unlock(folio);
	return err;
}

/*
 * Make @page, mapped at @addr of @vma, the KSM page of @s.  Return its
 * folio, still locked, or NULL.
 */
static struct folio *make_ksm(struct vm_area_struct *vma, unsigned long addr,
			      struct page *page, struct ksm_stable *s)
{
	struct folio *folio = lock_small(page);
	pte_t orig;

	if (!folio)
		return NULL;
	if (wrprotect_pte(vma, addr, folio, page, &orig, 0)) {
		folio_unlock(folio);
		return NULL;
	}
	/*
	 * Reclaim frees a clean anonymous page that MADV_FREE made lazy
	 * without writing it out: once shared, it holds its twins' data too.
	 */
	folio_mark_dirty(folio);
	ksm_stable_bind(s, folio);
	return folio;
}

/*
 * Record that @addr of @kmm maps the KSM page of @s (its folio locked).
 * Return its sharer entry, or NULL.
 */
static struct ksm_sharer *add_sharer(struct ksm_stable *s, struct ksm_mm *kmm,
				     struct vm_area_struct *vma,
				     unsigned long addr, unsigned int hist)
{
	get_anon_vma(vma->anon_vma);
	return ksm_stable_add(s, kmm, addr, vma->anon_vma, hist);
}

/* Is @addr of @kmm a candidate, its slot there to take a sharer? */
static bool is_candidate(struct ksm_mm *kmm, unsigned long addr,
			 unsigned int *hist)
{
	struct ksm_sharer *sh;
	struct ksm_cand cand;

	if (ksm_track_load(&kmm->pages, addr, &cand, &sh) != KSM_CANDIDATE)
		return false;
	*hist = ksm_cand_hist(cand);
	return true;
}

/* Merge @page into the KSM page of @s; false if that could not be done. */
static bool merge_stable(struct ksm_mm *kmm, unsigned long addr,
			 struct page *page, struct ksm_stable *s,
			 unsigned int hist)
{
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	struct folio *kfolio;
	int err = -EFAULT;

	mmap_read_lock(mm);
	vma = ksm_vma(mm, addr);
	if (!vma)
		goto unlock_mm;
	kfolio = ksm_stable_folio(s, true);
	if (IS_ERR_OR_NULL(kfolio))
		goto unlock_mm;
	/* Room first: once the pte points to the KSM page, rmap must see it. */
	if (!READ_ONCE(ksm_knobs.merge_across_nodes) &&
	    folio_nid(kfolio) != page_to_nid(page))
		err = -EFAULT;
	else
		err = ksm_stable_reserve(s);
	if (!err)
		err = merge_into(vma, addr, page, folio_page(kfolio, 0), 0);
	if (!err)
		add_sharer(s, kmm, vma, addr, hist);
	trace_ksm_merge_with_ksm_page(folio_page(kfolio, 0), folio_pfn(kfolio),
				      ksm_rmap_token(kmm, addr), mm, err);
	folio_unlock(kfolio);
	folio_put(kfolio);
unlock_mm:
	mmap_read_unlock(mm);
	return !err;
}

/*
 * The twin of a new KSM page did not follow: give the page at @addr of
 * @kmm a private copy again, as if the KSM page had never been, rather
 * than keep a KSM page of one mapping.  Return false if it still maps
 * the KSM page (it forked meanwhile, or memory ran out).
 */
static bool unmake_ksm(struct ksm_mm *kmm, unsigned long addr,
		       struct ksm_stable *s, struct folio *kfolio)
{
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	struct ksm_cand cand = { };
	struct ksm_sharer *sh;
	bool unmapped;
	void *kaddr;

	mmap_read_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && vma->anon_vma)
		ksm_break_range(vma, addr, addr + PAGE_SIZE);
	mmap_read_unlock(mm);

	folio_lock(kfolio);
	unmapped = ksm_folio_stable(kfolio) == s && !folio_mapped(kfolio);
	folio_unlock(kfolio);
	if (!unmapped ||
	    ksm_track_load(&kmm->pages, addr, &cand, &sh) != KSM_MERGED ||
	    sh->stable != s)
		return false;
	/* The copy holds what the KSM page holds: it may merge next pass. */
	kaddr = kmap_local_folio(kfolio, 0);
	cand = (struct ksm_cand) { .sig = ksm_sig_fold(ksm_content_sig(kaddr)) };
	kunmap_local(kaddr);
	ksm_stable_drop(sh);
	ksm_track_store_cand(&kmm->pages, addr, cand, GFP_KERNEL);
	/* No sharer, nothing maps it: the end of the pass frees the node. */
	return true;
}

/*
 * Merge @page with its twin in the unstable tree, @u: @page becomes a
 * KSM page, the twin maps it, and it joins the stable tree.  Should the
 * twin not follow, @page gets a private copy back.
 */
static void merge_pair(struct ksm_mm *kmm, unsigned long addr,
		       struct page *page, unsigned int hist,
		       const struct ksm_pins *pins, struct ksm_unode *u,
		       u64 key, int nid)
{
	struct ksm_mm *tkmm = u->kmm;
	unsigned long taddr = u->addr;
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	struct folio *kfolio = NULL;
	unsigned int thist = 0;
	struct page *tpage;
	struct ksm_stable *s;
	bool twin = false;
	int err;

	/* Whatever comes of it, the twin leaves the unstable tree. */
	ksm_unstable_erase(u, nid);
	s = ksm_stable_new();
	if (!s)
		return;
	s->pending = true;

	mmap_read_lock(mm);
	vma = ksm_vma(mm, addr);
	if (vma && !ksm_stable_reserve(s))
		kfolio = make_ksm(vma, addr, page, s);
	if (kfolio) {
		add_sharer(s, kmm, vma, addr, hist);
		folio_unlock(kfolio);
	}
	mmap_read_unlock(mm);
	/* As 6.12 reports the first half of a pair: no KSM page yet. */
	trace_ksm_merge_with_ksm_page(NULL, page_to_pfn(page),
				      ksm_rmap_token(kmm, addr), mm,
				      kfolio ? 0 : -EFAULT);
	if (!kfolio) {
		ksm_stable_free(s);	/* no page ever named it */
		return;
	}

	mm = tkmm->mm;
	if (READ_ONCE(tkmm->dead) || !mmget_not_zero(mm))
		goto failed;
	mmap_read_lock(mm);
	vma = ksm_vma(mm, taddr);
	tpage = vma && is_candidate(tkmm, taddr, &thist) ?
		ksm_lookup_page(vma, taddr) : NULL;
	err = -EFAULT;
	if (tpage) {
		folio_lock(kfolio);
		if (ksm_folio_stable(kfolio) != s)
			err = -EFAULT;
		else
			err = ksm_stable_reserve(s);
		if (!err)
			err = merge_into(vma, taddr, tpage, page,
					 ksm_pins_count(pins, tpage));
		if (!err) {
			add_sharer(s, tkmm, vma, taddr, thist);
			twin = true;
		}
		folio_unlock(kfolio);
		put_page(tpage);
	}
	mmap_read_unlock(mm);
	trace_ksm_merge_with_ksm_page(page, page_to_pfn(page),
				      ksm_rmap_token(tkmm, taddr), mm, err);
	mmput_async(mm);	/* async: ksm_lock is held */
failed:
	if (!twin && unmake_ksm(kmm, addr, s, kfolio))
		return;
	/* The twin joined, or the page could not be given back: it counts. */
	ksm_stable_confirm(s);
	ksm_stable_insert(s, key, nid);
}

/* Map the zero page in place of @page, all zeroes. */
static void merge_zero(struct ksm_mm *kmm, unsigned long addr,
		       struct page *page)
{
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	int err = -EAGAIN;

	mmap_read_lock(mm);
	vma = ksm_vma(mm, addr);
	if (vma) {
		err = merge_into(vma, addr, page, NULL, 0);
		trace_ksm_merge_one_page(my_zero_pfn(addr),
					 ksm_rmap_token(kmm, addr), mm, err);
	}
	mmap_read_unlock(mm);
	/* The zero page is not tracked: nothing to unmerge but the pte. */
	if (!err)
		ksm_mm_forget_range(kmm, addr, addr + PAGE_SIZE);
}

/**
 * ksm_merge_page() - merge a page that stopped changing, or keep it for later
 * @kmm: the page's mm, which the caller holds a user reference to
 * @addr: the page's address
 * @page: the page, referenced; not a KSM page
 * @hist: what the page takes along if it merges (ksm_cand_hist())
 * @pins: other pages the caller holds references to, or NULL
 *
 * Context: ksm_lock held, no mmap lock.
 * Return: true if the page went into the unstable tree to wait for a twin.
 */
bool ksm_merge_page(struct ksm_mm *kmm, unsigned long addr, struct page *page,
		    unsigned int hist, const struct ksm_pins *pins)
{
	struct ksm_stable *s;
	struct ksm_unode *u;
	bool inserted;
	void *content;
	int nid;
	u64 key;

	content = kmap_local_page(page);
	key = ksm_content_key(content);
	if (!key && READ_ONCE(ksm_knobs.use_zero_pages)) {
		kunmap_local(content);
		merge_zero(kmm, addr, page);
		return false;
	}
	nid = ksm_tree_nid(page);
	s = ksm_stable_find(key, content, nid);
	if (s) {
		kunmap_local(content);
		if (merge_stable(kmm, addr, page, s, hist))
			return false;
		/* As 6.12: a KSM page that could not be had leaves the twins. */
		content = kmap_local_page(page);
	}
	u = ksm_unstable_find(key, content, page, nid, &inserted, kmm, addr);
	kunmap_local(content);
	if (u)
		merge_pair(kmm, addr, page, hist, pins, u, key, nid);
	return inserted;
}

/*
 * Map @kpage, a twin of the KSM page @page of @folio (locked), where @page
 * is mapped at @addr of @vma.  Both are write-protected KSM pages of the
 * same contents: nothing needs comparing.
 */
static int remap_twin(struct vm_area_struct *vma, unsigned long addr,
		      struct folio *folio, struct page *page,
		      struct page *kpage)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	pte_t orig;

	if (!page_vma_mapped_walk(&pvmw))
		return -EAGAIN;
	orig = pvmw.pte ? ptep_get(pvmw.pte) : __pte(0);
	page_vma_mapped_walk_done(&pvmw);
	if (!pte_present(orig) || pte_write(orig))
		return -EAGAIN;
	return replace_pte(vma, addr, page, kpage, orig);
}

/*
 * Does rmap find a mapping of @sh's KSM page only through @sh: a forked
 * child's, which ksmd has not visited yet?  Walked as rmap_walk_ksm()
 * walks it, the KSM folio locked.
 */
static bool sharer_covers_others(struct ksm_sharer *sh)
{
	unsigned long addr = ksm_sharer_addr(sh);
	struct anon_vma *anon_vma = sh->anon_vma;
	struct mm_struct *mm = sh->kmm->mm;
	struct anon_vma_chain *avc;
	bool others = false;

	anon_vma_lock_read(anon_vma);
	anon_vma_interval_tree_foreach(avc, &anon_vma->rb_root, 0, ULONG_MAX) {
		struct vm_area_struct *vma = avc->vma;

		if (vma->vm_mm != mm && addr >= vma->vm_start &&
		    addr < vma->vm_end) {
			others = true;
			break;
		}
	}
	anon_vma_unlock_read(anon_vma);
	return others;
}

/**
 * ksm_merge_twin() - move a sharer of a KSM page to a twin with more
 * @sh: the sharer, whose page's slot points to it
 * @page: the KSM page it maps, referenced
 * @t: a twin of that KSM page (ksm_stable_fuller_twin())
 *
 * Context: ksm_lock and a user of the sharer's mm held, no mmap lock.
 */
void ksm_merge_twin(struct ksm_sharer *sh, struct page *page,
		    struct ksm_stable *t)
{
	unsigned long addr = ksm_sharer_addr(sh);
	unsigned int hist = ksm_sharer_hist(sh);
	struct folio *folio = page_folio(page);
	struct ksm_stable *s = sh->stable;
	struct ksm_mm *kmm = sh->kmm;
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	struct folio *tfolio;
	int err;

	mmap_read_lock(mm);
	vma = ksm_vma(mm, addr);
	if (!vma)
		goto unlock_mm;
	tfolio = ksm_stable_folio(t, true);
	if (IS_ERR_OR_NULL(tfolio))
		goto unlock_mm;
	if (tfolio == folio || folio_test_hwpoison(tfolio) ||
	    (!READ_ONCE(ksm_knobs.merge_across_nodes) &&
	     folio_nid(tfolio) != folio_nid(folio)) ||
	    !folio_trylock(folio))
		goto unlock_t;
	/*
	 * Forked children that ksmd did not visit yet map the page unnamed,
	 * found by rmap only through this sharer's anon_vma: leave it be.
	 */
	if (ksm_folio_stable(folio) != s || sharer_covers_others(sh) ||
	    ksm_stable_reserve(t)) {
		folio_unlock(folio);
		goto unlock_t;
	}
	err = remap_twin(vma, addr, folio, page, folio_page(tfolio, 0));
	if (!err) {
		/* As in merge_into(): MADV_FREE may have made the twin clean. */
		folio_mark_dirty(tfolio);
		ksm_stable_drop_locked(sh, folio);
		add_sharer(t, kmm, vma, addr, hist);
	} else {
		folio_unlock(folio);
	}
	trace_ksm_merge_with_ksm_page(folio_page(tfolio, 0), folio_pfn(tfolio),
				      ksm_rmap_token(kmm, addr), mm, err);
unlock_t:
	folio_unlock(tfolio);
	folio_put(tfolio);
unlock_mm:
	mmap_read_unlock(mm);
}

/**
 * ksm_attach_page() - record a KSM page found mapped where no slot names it
 * @kmm: the page's mm, which the caller holds a user reference to
 * @addr: the page's address
 * @page: the KSM page, referenced
 *
 * Forked children inherit their parent's KSM pages; a swapped-in KSM page
 * may come back where another was.  The slot must exist already.
 *
 * Context: ksm_lock held, no mmap lock.
 */
void ksm_attach_page(struct ksm_mm *kmm, unsigned long addr,
		     struct page *page)
{
	struct folio *folio = page_folio(page);
	struct mm_struct *mm = kmm->mm;
	struct vm_area_struct *vma;
	struct ksm_stable *s;
	struct folio_walk fw;

	mmap_read_lock(mm);
	vma = ksm_vma(mm, addr);
	if (!vma)
		goto unlock_mm;
	folio_lock(folio);
	s = ksm_folio_stable(folio);
	if (s && !ksm_stable_reserve(s)) {
		/* Still mapped there? */
		struct folio *mapped = folio_walk_start(&fw, vma, addr, 0);

		if (mapped)
			folio_walk_end(&fw, vma);
		/*
		 * Forks go over max_page_sharing, as in 6.12: the mapping
		 * exists already, and rmap must keep finding it.
		 */
		if (mapped == folio)
			add_sharer(s, kmm, vma, addr, 0);
	}
	folio_unlock(folio);
unlock_mm:
	mmap_read_unlock(mm);
}
