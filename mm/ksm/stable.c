// SPDX-License-Identifier: GPL-2.0
/*
 * KSM stable tree: the KSM pages, each with its node and the tracked
 * pages that share it.
 *
 * A node outlives its page until no tracked slot points to it, and its
 * page never outlives it: a page's ->mapping names the node.  A node
 * whose page is gone is found out lazily, by a search or by the prune at
 * the end of a pass, and leaves the tree then.
 */
#include <linux/highmem.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/slab.h>

#include "ksm.h"

static struct kmem_cache *stable_cache;
static struct rb_root *stable_roots;	/* one a node, or just [0] */
static u64 twins_seq;			/* the last twins class handed out */

/**
 * ksm_tree_nid() - which tree a page belongs in
 * @page: the page
 *
 * Return: its NUMA node when merge_across_nodes is off, else 0.
 */
int ksm_tree_nid(struct page *page)
{
	return READ_ONCE(ksm_knobs.merge_across_nodes) ? 0 : page_to_nid(page);
}

/**
 * ksm_stable_init() - set up the stable tree at boot
 *
 * Return: 0, or -ENOMEM.
 */
int __init ksm_stable_init(void)
{
	int nid;

	stable_cache = KMEM_CACHE(ksm_stable, 0);
	stable_roots = kcalloc(nr_node_ids, sizeof(*stable_roots), GFP_KERNEL);
	if (!stable_cache || !stable_roots)
		return -ENOMEM;
	for (nid = 0; nid < nr_node_ids; nid++)
		stable_roots[nid] = RB_ROOT;
	return 0;
}

/**
 * ksm_stable_new() - a node for a page about to become a KSM page
 *
 * Return: the node, in no tree and with no sharer; or NULL.
 */
struct ksm_stable *ksm_stable_new(void)
{
	struct ksm_stable *s = kmem_cache_zalloc(stable_cache, GFP_KERNEL);

	if (s)
		RB_CLEAR_NODE(&s->tn.rb);
	return s;
}

/**
 * ksm_stable_free() - free a node that no page and no slot names
 * @s: the node, in no tree
 */
void ksm_stable_free(struct ksm_stable *s)
{
	WARN_ON_ONCE(s->nr || !RB_EMPTY_NODE(&s->tn.rb));
	kfree(s->sharers);
	kmem_cache_free(stable_cache, s);
}

/**
 * ksm_stable_bind() - make a folio the KSM page of a node
 * @s: the node
 * @folio: the folio, small, anonymous, locked and write-protected
 */
void ksm_stable_bind(struct ksm_stable *s, struct folio *folio)
{
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	WRITE_ONCE(s->kpfn, folio_pfn(folio));
	/* Anonymous rmap walkers read ->mapping without the folio lock. */
	WRITE_ONCE(folio->mapping, (void *)((unsigned long)s | PAGE_MAPPING_KSM));
}

/**
 * ksm_stable_folio() - the KSM page of a node, referenced
 * @s: the node
 * @lock: lock the folio too
 *
 * Context: ksm_lock held (memory offlining pauses us).
 * Return: the folio; NULL if it is gone for good; ERR_PTR(-EAGAIN) if it
 * is there but cannot be had now (being migrated or freed).
 */
struct folio *ksm_stable_folio(struct ksm_stable *s, bool lock)
{
	void *mine = (void *)((unsigned long)s | PAGE_MAPPING_KSM);
	struct folio *folio;
	unsigned long pfn;
	struct page *page;

again:
	pfn = READ_ONCE(s->kpfn);
	page = pfn_to_online_page(pfn);
	if (!page)
		return NULL;
	folio = page_folio(page);
	if (READ_ONCE(folio->mapping) != mine)
		goto not_mine;
	if (!folio_try_get(folio)) {
		/* Frozen for migration, or on its way to be freed. */
		return ERR_PTR(-EAGAIN);
	}
	if (READ_ONCE(folio->mapping) != mine || folio_page(folio, 0) != page) {
		folio_put(folio);
		goto not_mine;
	}
	if (lock) {
		folio_lock(folio);
		if (READ_ONCE(folio->mapping) != mine) {
			folio_unlock(folio);
			folio_put(folio);
			goto not_mine;
		}
	}
	return folio;

not_mine:
	/* Migration moves kpfn before it lets go of the old folio. */
	smp_rmb();
	if (READ_ONCE(s->kpfn) != pfn)
		goto again;
	return NULL;
}

static struct ksm_stable *tnode_stable(struct ksm_tnode *tn)
{
	return container_of(tn, struct ksm_stable, tn);
}

struct stable_ctx {
	struct folio *folio;	/* mapped by stable_map() */
	struct ksm_stable *equal;	/* a node of equal contents met */
	bool busy;		/* a node's page could not be had for now */
	bool inserting;		/* looking for a place, not a match */
};

static const void *stable_map(struct ksm_tnode *tn, void *arg)
{
	struct folio *folio = ksm_stable_folio(tnode_stable(tn), false);
	struct stable_ctx *ctx = arg;

	if (IS_ERR(folio))
		ctx->busy = true;
	if (IS_ERR_OR_NULL(folio))
		return NULL;
	ctx->folio = folio;
	return kmap_local_folio(folio, 0);
}

static void stable_unmap(struct ksm_tnode *tn, const void *addr, void *arg)
{
	struct stable_ctx *ctx = arg;

	kunmap_local(addr);
	folio_put(ctx->folio);
}

static bool stable_full(struct ksm_tnode *tn, void *arg)
{
	struct stable_ctx *ctx = arg;

	ctx->equal = tnode_stable(tn);
	return ctx->inserting ||
	       tnode_stable(tn)->nr >= READ_ONCE(ksm_knobs.max_page_sharing);
}

/* KSM pages never change: twins stay twins, and need no second look. */
static bool stable_same(struct ksm_tnode *a, struct ksm_tnode *b, void *arg)
{
	return tnode_stable(a)->twins == tnode_stable(b)->twins;
}

static const struct ksm_tree_ops stable_ops = {
	.map	= stable_map,
	.unmap	= stable_unmap,
	.full	= stable_full,
	.same	= stable_same,
};

/* The node's page is gone: out of the tree, and freed if no slot names it. */
static void stable_gone(struct ksm_stable *s, struct rb_root *root)
{
	if (!RB_EMPTY_NODE(&s->tn.rb))
		ksm_tree_erase(root, &s->tn);
	if (!s->nr)
		ksm_stable_free(s);
}

/**
 * ksm_stable_find() - look for a KSM page with given contents
 * @key: ksm_content_key() of @content
 * @content: the contents, mapped
 * @nid: the tree (ksm_tree_nid())
 *
 * Nodes found stale on the way are taken out.
 *
 * Context: ksm_lock held.
 * Return: the node of a KSM page with these contents and room for one
 * more sharer, or NULL.
 */
struct ksm_stable *ksm_stable_find(u64 key, const void *content, int nid)
{
	struct rb_root *root = &stable_roots[nid];
	struct stable_ctx ctx = { };
	struct ksm_tree_pos pos;

	struct folio *folio;
	struct ksm_stable *s;

	lockdep_assert_held(&ksm_lock);
again:
	while (ksm_tree_find(root, key, content, &stable_ops, &ctx, &pos)) {
		if (ctx.busy)
			return NULL;	/* try again next pass */
		stable_gone(tnode_stable(pos.stale), root);
	}
	if (!pos.match)
		return NULL;
	s = tnode_stable(pos.match);
	/* A twin matched unseen: is its page still there? */
	folio = ksm_stable_folio(s, false);
	if (IS_ERR(folio))
		return NULL;
	if (!folio) {
		stable_gone(s, root);
		goto again;
	}
	folio_put(folio);
	return s;
}

/**
 * ksm_stable_insert() - put a new KSM page's node in the stable tree
 * @s: the node, bound to its page
 * @key: the order key of the page
 * @nid: the tree
 *
 * Context: ksm_lock held.
 */
void ksm_stable_insert(struct ksm_stable *s, u64 key, int nid)
{
	struct rb_root *root = &stable_roots[nid];
	struct stable_ctx ctx = { };
	struct ksm_tree_pos pos;
	struct folio *folio;
	void *content;

	while (IS_ERR(folio = ksm_stable_folio(s, false)))
		cond_resched();
	if (!folio)
		return;	/* not in the tree: freed with its last sharer */
	content = kmap_local_folio(folio, 0);
	/* Equal nodes count as full: the new one goes right of them. */
	ctx.inserting = true;
	while (ksm_tree_find(root, key, content, &stable_ops, &ctx, &pos)) {
		if (ctx.busy) {
			/* Migrated or freed this very moment: soon settled. */
			ctx.busy = false;
			cond_resched();
			continue;
		}
		stable_gone(tnode_stable(pos.stale), root);
	}
	/* A twin of the equal nodes passed, or the first of its kind. */
	s->twins = ctx.equal ? ctx.equal->twins : ++twins_seq;
	ksm_tree_insert(root, &s->tn, key, &pos);
	kunmap_local(content);
	folio_put(folio);
}

/**
 * ksm_stable_add() - a tracked page now maps a KSM page
 * @s: the KSM page's node
 * @kmm: the page's mm
 * @addr: where it maps the KSM page
 * @anon_vma: of the VMA there; the node takes over this reference
 *
 * Context: ksm_lock held, the KSM folio locked.
 * Return: 0, or -ENOMEM (and @anon_vma is put).
 */
int ksm_stable_add(struct ksm_stable *s, struct ksm_mm *kmm,
		   unsigned long addr, struct anon_vma *anon_vma)
{
	lockdep_assert_held(&ksm_lock);
	if (s->nr == s->cap) {
		unsigned int cap = max(2U, s->cap * 2);
		struct ksm_sharer *v;

		v = krealloc_array(s->sharers, cap, sizeof(*v),
				   GFP_KERNEL | __GFP_NOWARN);
		if (!v) {
			put_anon_vma(anon_vma);
			return -ENOMEM;
		}
		s->sharers = v;
		s->cap = cap;
	}
	s->sharers[s->nr++] = (struct ksm_sharer) {
		.kmm = kmm, .anon_vma = anon_vma, .addr = addr,
	};
	if (s->nr == 1)
		ksm_stats.pages_shared++;
	else
		ksm_stats.pages_sharing++;
	kmm->mm->ksm_merging_pages++;
	return 0;
}

/**
 * ksm_stable_drop() - a tracked page no longer counts as mapping a KSM page
 * @s: the node its slot named
 * @kmm: the page's mm
 * @addr: the page's address
 *
 * Context: ksm_lock held; may sleep on the KSM folio's lock.
 */
void ksm_stable_drop(struct ksm_stable *s, struct ksm_mm *kmm,
		     unsigned long addr)
{
	struct anon_vma *anon_vma = NULL;
	struct folio *folio;
	unsigned int i;

	lockdep_assert_held(&ksm_lock);
	/* Rmap walks read the sharers under the folio lock: wait for it. */
	while (IS_ERR(folio = ksm_stable_folio(s, true)))
		cond_resched();

	for (i = 0; i < s->nr; i++) {
		if (s->sharers[i].kmm != kmm || s->sharers[i].addr != addr)
			continue;
		anon_vma = s->sharers[i].anon_vma;
		s->sharers[i] = s->sharers[--s->nr];
		if (s->nr)
			ksm_stats.pages_sharing--;
		else
			ksm_stats.pages_shared--;
		kmm->mm->ksm_merging_pages--;
		break;
	}
	WARN_ON_ONCE(!anon_vma);

	if (folio) {
		folio_unlock(folio);
		folio_put(folio);
	} else if (!s->nr && RB_EMPTY_NODE(&s->tn.rb)) {
		/* Page gone, out of the tree, and we were the last slot. */
		ksm_stable_free(s);
	}
	if (anon_vma)
		put_anon_vma(anon_vma);
}

/**
 * ksm_stable_prune() - take out the nodes whose pages are gone
 * @start_pfn: only nodes whose page was in [@start_pfn, @end_pfn)
 * @end_pfn: end of the range
 *
 * Context: ksm_lock held.
 */
void ksm_stable_prune(unsigned long start_pfn, unsigned long end_pfn)
{
	struct ksm_stable *s;
	struct rb_node *rb, *next;
	struct folio *folio;
	int nid;

	lockdep_assert_held(&ksm_lock);
	for (nid = 0; nid < nr_node_ids; nid++) {
		for (rb = rb_first(&stable_roots[nid]); rb; rb = next) {
			next = rb_next(rb);
			s = tnode_stable(rb_entry(rb, struct ksm_tnode, rb));
			if (s->kpfn < start_pfn || s->kpfn >= end_pfn)
				continue;
			folio = ksm_stable_folio(s, false);
			if (!folio)
				stable_gone(s, &stable_roots[nid]);
			else if (!IS_ERR(folio))
				folio_put(folio);
		}
		cond_resched();
	}
}
