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
#include <trace/events/ksm.h>

#include "ksm.h"

static struct kmem_cache *stable_cache;
static struct rb_root *stable_roots;	/* one a node, or just [0] */
static u64 twins_seq;			/* the last twins class handed out */

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
 * @s: the node, in no tree and on no list
 */
void ksm_stable_free(struct ksm_stable *s)
{
	WARN_ON_ONCE(s->nr || s->orphan || !RB_EMPTY_NODE(&s->tn.rb));
	kvfree(s->sharers);
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
 * ksm_stable_unbind() - a KSM page that nothing maps leaves its node
 * @s: the node, which the caller then frees
 * @folio: its folio, locked and mapped nowhere
 *
 * The folio stays a KSM page with no node until it is freed: a swap-in
 * then maps a copy of it.
 */
void ksm_stable_unbind(struct ksm_stable *s, struct folio *folio)
{
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	VM_WARN_ON_ONCE_FOLIO(folio_mapped(folio), folio);
	WRITE_ONCE(folio->mapping, (void *)PAGE_MAPPING_KSM);
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

/* Nodes whose last sharer left while their page lived. */
static struct ksm_stable *orphans;

static void orphan_add(struct ksm_stable *s)
{
	if (s->orphan)
		return;
	s->orphan = true;
	s->orphan_next = orphans;
	WRITE_ONCE(orphans, s);
}

/*
 * Twins (KSM pages of equal contents) sit side by side in a tree: how
 * many of @s's class are there, counting @s, up to 3?
 */
static unsigned int twins_near(struct ksm_stable *s)
{
	unsigned int n = 1;
	struct rb_node *rb;

	for (rb = rb_prev(&s->tn.rb); rb && n < 3; rb = rb_prev(rb), n++)
		if (tnode_stable(rb_entry(rb, struct ksm_tnode, rb))->twins !=
		    s->twins)
			break;
	for (rb = rb_next(&s->tn.rb); rb && n < 3; rb = rb_next(rb), n++)
		if (tnode_stable(rb_entry(rb, struct ksm_tnode, rb))->twins !=
		    s->twins)
			break;
	return n;
}

/*
 * stable_node_chains counts contents held by more than one KSM page,
 * stable_node_dups the KSM pages of those, as 6.12 counts its chains.
 * @s just joined its class (@delta 1), or is about to leave it (-1).
 */
static void count_twins(struct ksm_stable *s, int delta)
{
	unsigned int n = twins_near(s);

	if (n == 2) {
		ksm_stats.stable_node_chains += delta;
		ksm_stats.stable_node_dups += 2 * delta;
	} else if (n > 2) {
		ksm_stats.stable_node_dups += delta;
	}
}

static void stable_erase(struct ksm_stable *s)
{
	count_twins(s, -1);
	ksm_tree_erase(&stable_roots[s->nid], &s->tn);
}

/*
 * The page of @s is gone: out of the tree, and freed unless a slot or
 * the orphans list still names it.
 */
static void stable_gone(struct ksm_stable *s)
{
	if (!RB_EMPTY_NODE(&s->tn.rb)) {
		trace_ksm_remove_ksm_page(s->kpfn);
		stable_erase(s);
	}
	if (!s->nr && !s->orphan)
		ksm_stable_free(s);
}

/* Is the KSM page of @s in another NUMA node's tree than its node's? */
static bool stable_misplaced(struct ksm_stable *s, struct folio *folio)
{
	return !READ_ONCE(ksm_knobs.merge_across_nodes) &&
	       folio_nid(folio) != s->nid;
}

/*
 * The KSM page of @s was migrated to another NUMA node: follow it.  An
 * insertion may meet more such nodes; past a depth they are only taken
 * out, and their sharers' next visits put them back (ksm_stable_moved()).
 */
static void stable_relocate(struct ksm_stable *s, int nid)
{
	static unsigned int depth;	/* ksm_lock serializes us */

	if (!RB_EMPTY_NODE(&s->tn.rb))
		stable_erase(s);
	if (depth >= 2)
		return;
	depth++;
	ksm_stable_insert(s, s->tn.key, nid);
	depth--;
}

struct stable_ctx {
	struct folio *folio;	/* mapped by stable_map() */
	struct ksm_stable *equal;	/* a node of equal contents met */
	int moved_nid;		/* the stale node's page moved there */
	bool busy;		/* a node's page could not be had for now */
	bool inserting;		/* looking for a place, not a match */
};

static const void *stable_map(struct ksm_tnode *tn, void *arg)
{
	struct ksm_stable *s = tnode_stable(tn);
	struct folio *folio = ksm_stable_folio(s, false);
	struct stable_ctx *ctx = arg;

	if (IS_ERR(folio))
		ctx->busy = true;
	if (IS_ERR_OR_NULL(folio))
		return NULL;
	if (stable_misplaced(s, folio)) {
		/* Stale for this tree: the caller moves it to its own. */
		ctx->moved_nid = folio_nid(folio);
		folio_put(folio);
		return NULL;
	}
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

/* A search met a stale node: move it to its tree, or take it out. */
static void stable_stale(struct ksm_stable *s, struct stable_ctx *ctx)
{
	if (ctx->moved_nid != NUMA_NO_NODE) {
		stable_relocate(s, ctx->moved_nid);
		ctx->moved_nid = NUMA_NO_NODE;
	} else {
		stable_gone(s);
	}
}

/**
 * ksm_stable_find() - look for a KSM page with given contents
 * @key: ksm_content_key() of @content
 * @content: the contents, mapped
 * @nid: the tree (ksm_tree_nid())
 *
 * Nodes found stale on the way are taken out, or moved to the tree of
 * the NUMA node their page was migrated to.
 *
 * Context: ksm_lock held.
 * Return: the node of a KSM page with these contents and room for one
 * more sharer, or NULL.
 */
struct ksm_stable *ksm_stable_find(u64 key, const void *content, int nid)
{
	struct stable_ctx ctx = { .moved_nid = NUMA_NO_NODE };
	struct rb_root *root = &stable_roots[nid];
	struct ksm_tree_pos pos;
	struct folio *folio;
	struct ksm_stable *s;

	lockdep_assert_held(&ksm_lock);
again:
	while (ksm_tree_find(root, key, content, &stable_ops, &ctx, &pos)) {
		if (ctx.busy)
			return NULL;	/* try again next pass */
		stable_stale(tnode_stable(pos.stale), &ctx);
	}
	if (!pos.match)
		return NULL;
	s = tnode_stable(pos.match);
	/* A twin matched unseen: is its page still there, and here? */
	folio = ksm_stable_folio(s, false);
	if (IS_ERR(folio))
		return NULL;
	if (!folio) {
		stable_gone(s);
		goto again;
	}
	if (stable_misplaced(s, folio)) {
		ctx.moved_nid = folio_nid(folio);
		folio_put(folio);
		stable_stale(s, &ctx);
		goto again;
	}
	folio_put(folio);
	return s;
}

/**
 * ksm_stable_insert() - put a KSM page's node in a stable tree
 * @s: the node, bound to its page, in no tree
 * @key: the order key of the page
 * @nid: the tree
 *
 * Should the page be gone already, the node is freed unless a slot or
 * the orphans list names it: the caller must not use @s after this.
 *
 * Context: ksm_lock held.
 */
void ksm_stable_insert(struct ksm_stable *s, u64 key, int nid)
{
	struct stable_ctx ctx = { .moved_nid = NUMA_NO_NODE };
	struct rb_root *root = &stable_roots[nid];
	struct ksm_tree_pos pos;
	struct folio *folio;
	void *content;

	s->nid = nid;
	s->tn.key = key;
	while (IS_ERR(folio = ksm_stable_folio(s, false)))
		cond_resched();
	if (!folio) {
		stable_gone(s);
		return;
	}
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
		stable_stale(tnode_stable(pos.stale), &ctx);
		ctx.equal = NULL;
	}
	/* A twin of the equal nodes passed, or the first of its kind. */
	s->twins = ctx.equal ? ctx.equal->twins : ++twins_seq;
	ksm_tree_insert(root, &s->tn, key, &pos);
	count_twins(s, 1);
	kunmap_local(content);
	folio_put(folio);
}

/**
 * ksm_stable_moved() - a sharer found its KSM page still mapped
 * @s: the node
 * @folio: its page, referenced
 *
 * With merge_across_nodes off, the node follows its page to the tree of
 * the page's NUMA node, where equal pages of that node look for it; a
 * node a relocation left out of the trees goes back in.
 *
 * Context: ksm_lock held.
 */
void ksm_stable_moved(struct ksm_stable *s, struct folio *folio)
{
	lockdep_assert_held(&ksm_lock);
	if (RB_EMPTY_NODE(&s->tn.rb))
		ksm_stable_insert(s, s->tn.key, ksm_tree_nid(&folio->page));
	else if (stable_misplaced(s, folio))
		stable_relocate(s, folio_nid(folio));
}

/**
 * ksm_stable_reserve() - make room for one more sharer
 * @s: the node
 *
 * Done before a page is mapped to the KSM page, so that recording it
 * cannot fail afterwards.  Sharers that move get their slots rewritten.
 *
 * Context: ksm_lock held, the KSM folio locked (rmap walks read the
 * sharers under it).
 * Return: 0, or -ENOMEM.
 */
int ksm_stable_reserve(struct ksm_stable *s)
{
	unsigned int cap, i;
	struct ksm_sharer *v;

	lockdep_assert_held(&ksm_lock);
	if (s->nr < s->cap)
		return 0;
	if (s->cap > UINT_MAX / 2)
		return -ENOMEM;
	cap = max(2U, s->cap * 2);
	v = kvmalloc_array(cap, sizeof(*v), GFP_KERNEL | __GFP_NOWARN);
	if (!v)
		return -ENOMEM;
	for (i = 0; i < s->nr; i++) {
		v[i] = s->sharers[i];
		ksm_track_store_sharer(&v[i].kmm->pages, ksm_sharer_addr(&v[i]),
				       &v[i]);
		if (!(i % 1024))
			cond_resched();
	}
	kvfree(s->sharers);
	s->sharers = v;
	s->cap = cap;
	return 0;
}

/**
 * ksm_stable_add() - a tracked page now maps a KSM page
 * @s: the KSM page's node, with room reserved
 * @kmm: the page's mm
 * @addr: where it maps the KSM page; its slot exists
 * @anon_vma: of the VMA there; the node takes over this reference
 * @hist: what the page takes along (ksm_cand_hist())
 *
 * The page's slot names its sharer entry from now on.
 *
 * Context: ksm_lock held, the KSM folio locked.
 * Return: the sharer entry (what tracepoints call its rmap_item), or NULL
 * if no room was reserved.
 */
struct ksm_sharer *ksm_stable_add(struct ksm_stable *s, struct ksm_mm *kmm,
				  unsigned long addr, struct anon_vma *anon_vma,
				  unsigned int hist)
{
	struct ksm_sharer *sh;

	lockdep_assert_held(&ksm_lock);
	if (WARN_ON_ONCE(s->nr >= s->cap)) {
		put_anon_vma(anon_vma);
		return NULL;
	}
	sh = &s->sharers[s->nr++];
	*sh = (struct ksm_sharer) {
		.stable = s, .kmm = kmm, .anon_vma = anon_vma,
		.where = addr | (hist & KSM_HIST_MASK),
	};
	ksm_track_store_sharer(&kmm->pages, addr, sh);
	if (s->pending && s->nr == 1)
		return sh;	/* counted when the twin joins */
	ksm_stable_confirm(s);
	if (s->nr == 1)
		ksm_stats.pages_shared++;
	else
		ksm_stats.pages_sharing++;
	kmm->mm->ksm_merging_pages++;
	return sh;
}

/**
 * ksm_stable_confirm() - a new KSM page counts from now on
 * @s: its node, made pending by its maker
 *
 * A page that became a KSM page for a twin that may not follow is not
 * counted until it does, so that the statistics, as 6.12's, never show
 * a KSM page of one mapping that is only on its way.
 *
 * Context: ksm_lock held.
 */
void ksm_stable_confirm(struct ksm_stable *s)
{
	if (!s->pending)
		return;
	s->pending = false;
	if (!s->nr)
		return;
	ksm_stats.pages_shared++;
	s->sharers[0].kmm->mm->ksm_merging_pages++;
}

/*
 * Take @sh out of its node's sharers, its KSM page @folio locked and
 * referenced (or NULL if gone); unlock and put it.
 */
static void sharer_remove(struct ksm_sharer *sh, struct folio *folio)
{
	struct ksm_stable *s = sh->stable;
	struct anon_vma *anon_vma = sh->anon_vma;
	struct ksm_mm *kmm = sh->kmm;
	struct ksm_sharer *last;

	/*
	 * As 6.12 traces the rmap_items still listed, all but the last, when
	 * it finds a KSM page gone: here, when its page is freed or mapped
	 * no more, or its mm exited.  A sharer leaving a page that stays is
	 * not traced.
	 */
	if (s->nr > 1 &&
	    (!folio || !folio_mapped(folio) || READ_ONCE(kmm->dead)))
		trace_ksm_remove_rmap_item(READ_ONCE(s->kpfn),
					   ksm_rmap_token(kmm, sh->where),
					   kmm->mm);
	last = &s->sharers[--s->nr];
	if (sh != last) {
		*sh = *last;
		ksm_track_store_sharer(&sh->kmm->pages, ksm_sharer_addr(sh), sh);
	}
	if (!s->pending) {
		if (s->nr)
			ksm_stats.pages_sharing--;
		else
			ksm_stats.pages_shared--;
		kmm->mm->ksm_merging_pages--;
	}

	if (!s->nr)
		s->pending = false;	/* a later sharer counts as usual */
	if (folio) {
		if (!s->nr)
			orphan_add(s);	/* seen again at the end of the pass */
		folio_unlock(folio);
		folio_put(folio);
	} else if (!s->nr) {
		stable_gone(s);
	}
	put_anon_vma(anon_vma);
}

/**
 * ksm_stable_drop() - a tracked page no longer counts as mapping a KSM page
 * @sh: its sharer entry
 *
 * The last sharer takes @sh's place: the caller must rewrite or erase
 * the page's slot, which still points to @sh, right away.
 *
 * Context: ksm_lock held; may sleep on the KSM folio's lock.
 */
void ksm_stable_drop(struct ksm_sharer *sh)
{
	struct folio *folio;

	lockdep_assert_held(&ksm_lock);
	/* Rmap walks read the sharers under the folio lock: wait for it. */
	while (IS_ERR(folio = ksm_stable_folio(sh->stable, true)))
		cond_resched();
	sharer_remove(sh, folio);
}

/**
 * ksm_stable_drop_locked() - ksm_stable_drop(), the KSM folio at hand
 * @sh: the sharer entry
 * @folio: the KSM page of its node, locked; unlocked on return
 *
 * Context: ksm_lock held.
 */
void ksm_stable_drop_locked(struct ksm_sharer *sh, struct folio *folio)
{
	lockdep_assert_held(&ksm_lock);
	VM_WARN_ON_ONCE_FOLIO(ksm_folio_stable(folio) != sh->stable, folio);
	folio_get(folio);
	sharer_remove(sh, folio);
}

/*
 * Twins drift apart as their sharers write or exit: a pass now and then
 * (every stable_node_chains_prune_millisecs at most) moves the sharers of
 * an underfull KSM page to a fuller twin, so that pages_sharing per KSM
 * page stays near max_page_sharing and emptied twins are freed.
 */
static bool twins_pass;			/* this pass moves sharers */
static unsigned long twins_next = INITIAL_JIFFIES;	/* the next such pass */

/* How far on each side a sharer looks for a fuller twin. */
#define KSM_TWINS_LOOK		4

/**
 * ksm_stable_pass_start() - a pass starts: is it one that packs twins?
 *
 * Context: ksm_lock held.
 */
void ksm_stable_pass_start(void)
{
	lockdep_assert_held(&ksm_lock);
	twins_pass = time_after_eq(jiffies, twins_next);
	if (twins_pass)
		twins_next = jiffies +
			msecs_to_jiffies(READ_ONCE(ksm_knobs.chains_prune_millisecs));
}

/**
 * ksm_stable_fuller_twin() - where a sharer of an underfull KSM page may go
 * @s: the node of the KSM page
 *
 * Twins sit side by side in the tree.  A sharer moves to a twin with
 * more sharers, or as many on its left, so that moves never go back and
 * forth; a twin gets no more than max_page_sharing.
 *
 * Context: ksm_lock held.
 * Return: the twin's node, or NULL to stay.
 */
struct ksm_stable *ksm_stable_fuller_twin(struct ksm_stable *s)
{
	unsigned int max = READ_ONCE(ksm_knobs.max_page_sharing);
	struct ksm_stable *t, *best = NULL;
	struct rb_node *rb;
	int i;

	lockdep_assert_held(&ksm_lock);
	if (!twins_pass || s->nr >= max || s->pending ||
	    RB_EMPTY_NODE(&s->tn.rb))
		return NULL;
	for (rb = rb_prev(&s->tn.rb), i = 0; rb && i < KSM_TWINS_LOOK;
	     rb = rb_prev(rb), i++) {
		t = tnode_stable(rb_entry(rb, struct ksm_tnode, rb));
		if (t->twins != s->twins)
			break;
		if (t->nr < max && t->nr >= s->nr && (!best || t->nr > best->nr))
			best = t;
	}
	for (rb = rb_next(&s->tn.rb), i = 0; rb && i < KSM_TWINS_LOOK;
	     rb = rb_next(rb), i++) {
		t = tnode_stable(rb_entry(rb, struct ksm_tnode, rb));
		if (t->twins != s->twins)
			break;
		if (t->nr < max && t->nr > s->nr && (!best || t->nr > best->nr))
			best = t;
	}
	return best;
}

/*
 * An orphan's fate: gone with its page, or freed from a page nothing maps
 * (it may wait in the swap cache or a pin; a swap-in then copies it).
 * Return false to keep it for the next pass: its page is busy, or mapped
 * where no slot names it yet (forked children that ksmd did not visit).
 */
static bool orphan_settle(struct ksm_stable *s)
{
	struct folio *folio;
	bool done = true;

	if (s->nr)
		return true;	/* a sharer came back */
	folio = ksm_stable_folio(s, false);
	if (IS_ERR(folio))
		return false;
	if (folio) {
		if (!folio_trylock(folio)) {
			folio_put(folio);
			return false;
		}
		/*
		 * Migrated since we looked: the node now names another folio,
		 * which may well be mapped.  Look again next time.
		 */
		if (ksm_folio_stable(folio) != s || folio_mapped(folio))
			done = false;
		else
			ksm_stable_unbind(s, folio);
		folio_unlock(folio);
		folio_put(folio);
		if (!done)
			return false;
	}
	s->orphan = false;
	stable_gone(s);
	return true;
}

/**
 * ksm_stable_has_orphans() - are there nodes to settle?
 *
 * Return: true if so; read without locks, a hint.
 */
bool ksm_stable_has_orphans(void)
{
	return READ_ONCE(orphans);
}

/**
 * ksm_stable_end_pass() - settle the orphans, at the end of a pass
 *
 * Costs what changed since the last pass, not what the stable tree holds.
 * Also while ksmd does not scan, for the orphans that exits leave.
 *
 * Context: ksm_lock held.
 * Return: true if some orphan was settled.
 */
bool ksm_stable_end_pass(void)
{
	struct ksm_stable *s, *next, *list = orphans;
	bool settled = false;

	lockdep_assert_held(&ksm_lock);
	WRITE_ONCE(orphans, NULL);
	for (s = list; s; s = next) {
		next = s->orphan_next;
		s->orphan = false;
		if (s->nr || orphan_settle(s))
			settled = true;
		else
			orphan_add(s);
		cond_resched();
	}
	return settled;
}

/**
 * ksm_stable_prune() - take out the nodes whose pages are gone
 * @start_pfn: only nodes whose page was in [@start_pfn, @end_pfn)
 * @end_pfn: end of the range
 *
 * For memory going offline: walks every node, yielding as it goes.
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
				stable_gone(s);
			else if (!IS_ERR(folio))
				folio_put(folio);
			cond_resched();
		}
	}
}

/**
 * ksm_stable_remove_all() - empty the stable trees, where nothing maps
 *
 * For run=2, and before the layout of the trees may change: a KSM page
 * that no slot names and nothing maps leaves its node, which is freed.
 *
 * Context: ksm_lock held.
 * Return: 0, or -EBUSY if some KSM page is still named or mapped.
 */
int ksm_stable_remove_all(void)
{
	struct ksm_stable *s, *next;
	struct rb_node *rb;
	int nid, err = 0;

	lockdep_assert_held(&ksm_lock);
	/* Orphans first, in or out of the trees: settled as at a pass end. */
	s = orphans;
	WRITE_ONCE(orphans, NULL);
	for (; s; s = next) {
		next = s->orphan_next;
		s->orphan = false;
		if (!orphan_settle(s)) {
			orphan_add(s);
			err = -EBUSY;
		}
		cond_resched();
	}
	for (nid = 0; nid < nr_node_ids; nid++) {
		rb = rb_first(&stable_roots[nid]);
		while (rb) {
			s = tnode_stable(rb_entry(rb, struct ksm_tnode, rb));
			rb = rb_next(rb);
			/* Listed again above: settling it here would free it listed. */
			if (s->orphan) {
				err = -EBUSY;
				continue;
			}
			if (s->nr || !orphan_settle(s)) {
				if (!s->nr)
					orphan_add(s);
				err = -EBUSY;
			}
			cond_resched();
		}
	}
	return err;
}

/**
 * ksm_stable_maps() - is a mapping of a KSM page one that rmap can find?
 * @s: the KSM page's node
 * @vma: the VMA of the mapping
 * @addr: its address
 *
 * rmap_walk_ksm() finds a mapping through a sharer at the same address
 * whose anon_vma the VMA is linked to: its own, or its parent's if it
 * was forked since.  A range no longer mergeable may lose its sharers
 * any time: it does not count.
 *
 * Context: the KSM folio locked; the VMA's mm locked.
 * Return: true if so.
 */
bool ksm_stable_maps(struct ksm_stable *s, struct vm_area_struct *vma,
		     unsigned long addr)
{
	struct anon_vma_chain *avc;
	unsigned int i;

	if (!(vma->vm_flags & VM_MERGEABLE))
		return false;
	for (i = 0; i < s->nr; i++) {
		if (ksm_sharer_addr(&s->sharers[i]) != addr)
			continue;
		list_for_each_entry(avc, &vma->anon_vma_chain, same_vma)
			if (avc->anon_vma == s->sharers[i].anon_vma)
				return true;
	}
	return false;
}

#ifdef CONFIG_KSM_KUNIT_TEST
#include "tests/stable-kunit.h"
#endif
