// SPDX-License-Identifier: GPL-2.0
/*
 * KSM content trees: red-black trees of pages ordered by contents, the
 * common ground of the stable and the unstable tree.
 *
 * A node caches the order key of its page, so a descent maps a node's page
 * only where the keys tie.  Mapping is the owner's business: it may find
 * the page gone, changed or moved, and then the node is stale.  The search
 * stops at a stale node and names it: the stable tree removes it and
 * searches again, the unstable tree gives the page up for this pass.
 */
#include <linux/errno.h>
#include <linux/rbtree.h>

#include "ksm.h"

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
 * ksm_tree_find() - look for a page's contents in a content tree
 * @root: the tree
 * @key: ksm_content_key() of @content
 * @content: the page looked for, mapped
 * @ops: how to reach the page of a node
 * @ctx: passed to @ops
 * @pos: filled in: the node found, or where to insert; the stale node met
 *
 * Return: 0 with @pos->match the node of equal contents, or NULL and
 * @pos->parent and @pos->link the place to insert @content's node;
 * -ESTALE with @pos->stale the node whose page could not be had.  A
 * node of equal contents that @ops->full() refuses is passed over; past
 * one, @ops->same() may tell its twins without reading their pages.
 */
int ksm_tree_find(struct rb_root *root, u64 key, const void *content,
		  const struct ksm_tree_ops *ops, void *ctx,
		  struct ksm_tree_pos *pos)
{
	struct rb_node **link = &root->rb_node, *parent = NULL;
	struct ksm_tnode *equal = NULL;	/* a node known equal to @content */

	pos->match = NULL;
	pos->stale = NULL;
	while (*link) {
		struct ksm_tnode *node = rb_entry(*link, struct ksm_tnode, rb);
		const void *other;
		int cmp;

		parent = *link;
		if (key != node->key) {
			cmp = key < node->key ? -1 : 1;
		} else if (equal && ops->same && ops->same(equal, node, ctx)) {
			cmp = 0;	/* a twin of a node compared already */
		} else {
			other = ops->map(node, ctx);
			if (!other) {
				pos->stale = node;
				return -ESTALE;
			}
			cmp = ksm_content_cmp(key, content, node->key, other);
			ops->unmap(node, other, ctx);
		}
		if (!cmp) {
			equal = node;
			/* Equal nodes that are full sit left of a new one. */
			if (ops->full && ops->full(node, ctx))
				cmp = 1;
		}
		if (!cmp) {
			pos->match = node;
			return 0;
		}
		link = cmp < 0 ? &parent->rb_left : &parent->rb_right;
	}
	pos->parent = parent;
	pos->link = link;
	return 0;
}

/**
 * ksm_tree_insert() - put a node where ksm_tree_find() found room for it
 * @root: the tree searched
 * @node: the new node
 * @key: the order key of the node's page
 * @pos: the result of a search that found no match, with the tree
 *	 unchanged since
 */
void ksm_tree_insert(struct rb_root *root, struct ksm_tnode *node, u64 key,
		     struct ksm_tree_pos *pos)
{
	node->key = key;
	rb_link_node(&node->rb, pos->parent, pos->link);
	rb_insert_color(&node->rb, root);
}

/**
 * ksm_tree_erase() - take a node out of its tree
 * @root: the tree
 * @node: the node
 */
void ksm_tree_erase(struct rb_root *root, struct ksm_tnode *node)
{
	rb_erase(&node->rb, root);
	RB_CLEAR_NODE(&node->rb);
}

#ifdef CONFIG_KSM_KUNIT_TEST
#include "tests/tree-kunit.h"
#endif
