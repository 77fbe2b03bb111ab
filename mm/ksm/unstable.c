// SPDX-License-Identifier: GPL-2.0
/*
 * KSM unstable tree: the pages of this pass that stopped changing but
 * matched no KSM page, waiting for a twin.
 *
 * Its nodes live in page-sized chunks thrown away whole at the end of the
 * pass, so a node costs no slab object and no freeing of its own.  A node
 * names its page by mm and address; the page may have changed, moved or
 * gone since: the order key cached at insertion keeps the tree a tree
 * whatever happened, and a node whose page cannot be had is taken out.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pagewalk.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include "ksm.h"

struct unode_chunk {
	struct unode_chunk *next;
	unsigned int used;
	struct ksm_unode nodes[];
};

#define UNODES_PER_CHUNK \
	((PAGE_SIZE - sizeof(struct unode_chunk)) / sizeof(struct ksm_unode))

static struct rb_root *unstable_roots;
static struct unode_chunk *chunks;

/**
 * ksm_unstable_init() - set up the unstable tree at boot
 *
 * Return: 0, or -ENOMEM.
 */
int __init ksm_unstable_init(void)
{
	int nid;

	unstable_roots = kcalloc(nr_node_ids, sizeof(*unstable_roots),
				 GFP_KERNEL);
	if (!unstable_roots)
		return -ENOMEM;
	for (nid = 0; nid < nr_node_ids; nid++)
		unstable_roots[nid] = RB_ROOT;
	return 0;
}

static struct ksm_unode *unode_alloc(void)
{
	struct unode_chunk *c = chunks;

	if (!c || c->used == UNODES_PER_CHUNK) {
		c = kmalloc(PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN);
		if (!c)
			return NULL;
		c->used = 0;
		c->next = chunks;
		chunks = c;
	}
	return &c->nodes[c->used++];
}

/**
 * ksm_unstable_reset() - forget this pass's candidates
 *
 * Context: ksm_lock held, at the end of a pass.
 */
void ksm_unstable_reset(void)
{
	struct unode_chunk *c;
	unsigned int i;
	int nid;

	lockdep_assert_held(&ksm_lock);
	for (nid = 0; nid < nr_node_ids; nid++)
		unstable_roots[nid] = RB_ROOT;
	while ((c = chunks)) {
		chunks = c->next;
		/* The nodes still in the tree let go of their mms. */
		for (i = 0; i < c->used; i++)
			if (c->nodes[i].kmm)
				ksm_mm_put_unode(c->nodes[i].kmm);
		kfree(c);
		cond_resched();
	}
}

struct unstable_ctx {
	struct page *page;	/* the page of the node being compared */
	struct page *self;	/* the page looked for */
	int nid;		/* the tree searched */
};

/* Map a node's page, if its mm still maps a mergeable page there. */
static const void *unstable_map(struct ksm_tnode *tn, void *arg)
{
	struct ksm_unode *u = container_of(tn, struct ksm_unode, tn);
	struct unstable_ctx *ctx = arg;
	struct mm_struct *mm = u->kmm->mm;
	struct vm_area_struct *vma;
	struct page *page = NULL;

	if (READ_ONCE(u->kmm->dead) || !mmget_not_zero(mm))
		return NULL;
	mmap_read_lock(mm);
	vma = ksm_vma(mm, u->addr);
	if (vma)
		page = ksm_lookup_page(vma, u->addr);
	mmap_read_unlock(mm);
	mmput_async(mm);	/* async: ksm_lock is held */
	if (!page)
		return NULL;
	if (page == ctx->self || ksm_tree_nid(page) != ctx->nid) {
		/*
		 * Moved up by mremap() and met again: not a twin.  Or
		 * migrated to another NUMA node, whose tree it belongs in.
		 */
		put_page(page);
		return NULL;
	}
	ctx->page = page;
	return kmap_local_page(page);
}

static void unstable_unmap(struct ksm_tnode *tn, const void *addr, void *arg)
{
	struct unstable_ctx *ctx = arg;

	kunmap_local(addr);
	put_page(ctx->page);
}

static const struct ksm_tree_ops unstable_ops = {
	.map	= unstable_map,
	.unmap	= unstable_unmap,
};

/**
 * ksm_unstable_find() - find a twin for a page, or wait for one
 * @key: ksm_content_key() of @content
 * @content: the page's contents, mapped
 * @page: the page
 * @nid: the tree (ksm_tree_nid())
 * @inserted: set when the page was put in the tree
 * @kmm: the page's mm
 * @addr: the page's address
 *
 * Context: ksm_lock held, no mmap lock: takes those of the nodes' mms.
 * Return: the node of a page with these contents, or NULL: then the page
 * is in the tree now, unless memory ran out.
 */
struct ksm_unode *ksm_unstable_find(u64 key, const void *content,
				    struct page *page, int nid, bool *inserted,
				    struct ksm_mm *kmm, unsigned long addr)
{
	struct rb_root *root = &unstable_roots[nid];
	struct unstable_ctx ctx = { .self = page, .nid = nid };
	struct ksm_tree_pos pos;
	struct ksm_unode *u;

	lockdep_assert_held(&ksm_lock);
	*inserted = false;
	while (ksm_tree_find(root, key, content, &unstable_ops, &ctx, &pos))
		ksm_unstable_erase(container_of(pos.stale, struct ksm_unode, tn),
				   nid);
	if (pos.match)
		return container_of(pos.match, struct ksm_unode, tn);

	u = unode_alloc();
	if (u) {
		u->kmm = kmm;
		u->addr = addr;
		kmm->unodes++;	/* kmm stays allocated while we name it */
		ksm_tree_insert(root, &u->tn, key, &pos);
		*inserted = true;
	}
	return NULL;
}

/**
 * ksm_unstable_erase() - take a node out: merged, or its page went away
 * @u: the node
 * @nid: its tree
 *
 * Context: ksm_lock held.  The node's memory stays until the pass ends;
 * it names no mm any more.
 */
void ksm_unstable_erase(struct ksm_unode *u, int nid)
{
	ksm_tree_erase(&unstable_roots[nid], &u->tn);
	ksm_mm_put_unode(u->kmm);
	u->kmm = NULL;
}
