/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KUnit tests for mm/ksm/tree.c: a content tree keeps memcmp() order,
 * finds what it holds and nothing else, maps pages only where keys tie,
 * names the stale node that stopped a search, and passes full twins.
 */
#ifndef _MM_KSM_TESTS_TREE_KUNIT_H
#define _MM_KSM_TESTS_TREE_KUNIT_H

#include <kunit/test.h>
#include <linux/prandom.h>
#include <linux/slab.h>

struct tree_test_node {
	struct ksm_tnode t;
	u8 *page;
	bool stale;
	bool full;
	unsigned int twins;
};

struct tree_test_ctx {
	unsigned int maps;
	unsigned int mapped;	/* maps not yet unmapped */
};

static const void *tree_test_map(struct ksm_tnode *node, void *ctx)
{
	struct tree_test_node *n = container_of(node, struct tree_test_node, t);
	struct tree_test_ctx *c = ctx;

	if (n->stale)
		return NULL;
	c->maps++;
	c->mapped++;
	return n->page;
}

static void tree_test_unmap(struct ksm_tnode *node, const void *addr,
			    void *ctx)
{
	struct tree_test_ctx *c = ctx;

	c->mapped--;
}

static const struct ksm_tree_ops tree_test_ops = {
	.map = tree_test_map,
	.unmap = tree_test_unmap,
};

/* Pages with few distinct first words, so that many keys tie. */
static void tree_test_fill(u8 *page, struct rnd_state *rs)
{
	unsigned int i;

	memset(page, 0, PAGE_SIZE);
	page[prandom_u32_state(rs) % 4] = 1 + prandom_u32_state(rs) % 2;
	for (i = 0; i < 8; i++)
		page[64 + prandom_u32_state(rs) % (PAGE_SIZE - 64)] =
			prandom_u32_state(rs);
}

#define TREE_TEST_PAGES 200

/* Build a tree of distinct random pages; returns how many went in. */
static unsigned int tree_test_build(struct kunit *test, struct rb_root *root,
				    struct tree_test_node *nodes,
				    struct tree_test_ctx *ctx)
{
	struct ksm_tree_pos pos;
	struct rnd_state rs;
	unsigned int i, n = 0;

	prandom_seed_state(&rs, 78);
	for (i = 0; i < TREE_TEST_PAGES; i++) {
		struct tree_test_node *node = &nodes[n];
		u64 key;

		node->page = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, node->page);
		tree_test_fill(node->page, &rs);
		key = ksm_content_key(node->page);
		KUNIT_ASSERT_EQ(test, 0, ksm_tree_find(root, key, node->page,
						       &tree_test_ops, ctx, &pos));
		if (pos.match)
			continue;	/* a duplicate: keep the tree distinct */
		ksm_tree_insert(root, &node->t, key, &pos);
		n++;
	}
	return n;
}

static void ksm_tree_test_keeps_memcmp_order(struct kunit *test)
{
	struct tree_test_node *nodes, *prev = NULL;
	struct tree_test_ctx ctx = { };
	struct rb_root root = RB_ROOT;
	unsigned int n, seen = 0;
	struct rb_node *rb;

	nodes = kunit_kcalloc(test, TREE_TEST_PAGES, sizeof(*nodes), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, nodes);
	n = tree_test_build(test, &root, nodes, &ctx);
	KUNIT_EXPECT_GT(test, n, TREE_TEST_PAGES / 2);
	KUNIT_EXPECT_EQ(test, 0u, ctx.mapped);

	for (rb = rb_first(&root); rb; rb = rb_next(rb), seen++) {
		struct tree_test_node *node =
			rb_entry(rb, struct tree_test_node, t.rb);

		if (prev)
			KUNIT_EXPECT_LT(test, memcmp(prev->page, node->page,
						     PAGE_SIZE), 0);
		prev = node;
	}
	KUNIT_EXPECT_EQ(test, n, seen);
}

static void ksm_tree_test_finds_contents_not_addresses(struct kunit *test)
{
	struct tree_test_ctx ctx = { };
	struct tree_test_node *nodes;
	struct rb_root root = RB_ROOT;
	struct ksm_tree_pos pos;
	unsigned int n, i;
	u8 *copy;

	nodes = kunit_kcalloc(test, TREE_TEST_PAGES, sizeof(*nodes), GFP_KERNEL);
	copy = kunit_kmalloc(test, PAGE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, nodes);
	KUNIT_ASSERT_NOT_NULL(test, copy);
	n = tree_test_build(test, &root, nodes, &ctx);

	for (i = 0; i < n; i++) {
		/* The same contents at another address: found. */
		memcpy(copy, nodes[i].page, PAGE_SIZE);
		KUNIT_ASSERT_EQ(test, 0, ksm_tree_find(&root, ksm_content_key(copy),
						       copy, &tree_test_ops,
						       &ctx, &pos));
		KUNIT_EXPECT_PTR_EQ(test, &nodes[i].t, pos.match);
		/* One bit off at the very end: not found. */
		copy[PAGE_SIZE - 1] ^= 0x80;
		KUNIT_ASSERT_EQ(test, 0, ksm_tree_find(&root, ksm_content_key(copy),
						       copy, &tree_test_ops,
						       &ctx, &pos));
		KUNIT_EXPECT_NULL(test, pos.match);
	}
	KUNIT_EXPECT_EQ(test, 0u, ctx.mapped);
}

static void ksm_tree_test_keys_spare_mapping(struct kunit *test)
{
	struct tree_test_ctx ctx = { };
	struct rb_root root = RB_ROOT;
	struct tree_test_node *nodes;
	struct ksm_tree_pos pos;
	unsigned int i;

	/* Pages whose first words all differ: keys decide everything. */
	nodes = kunit_kcalloc(test, 64, sizeof(*nodes), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, nodes);
	for (i = 0; i < 64; i++) {
		u64 key;

		nodes[i].page = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, nodes[i].page);
		nodes[i].page[0] = (i * 37) % 64 + 1;
		key = ksm_content_key(nodes[i].page);
		KUNIT_ASSERT_EQ(test, 0, ksm_tree_find(&root, key, nodes[i].page,
						       &tree_test_ops, &ctx, &pos));
		KUNIT_ASSERT_NULL(test, pos.match);
		ksm_tree_insert(&root, &nodes[i].t, key, &pos);
	}
	KUNIT_EXPECT_EQ(test, 0u, ctx.maps);
}

static void ksm_tree_test_names_stale_nodes(struct kunit *test)
{
	struct tree_test_ctx ctx = { };
	struct tree_test_node *nodes;
	struct rb_root root = RB_ROOT;
	struct ksm_tree_pos pos;
	unsigned int n, i, stale = 0;

	nodes = kunit_kcalloc(test, TREE_TEST_PAGES, sizeof(*nodes), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, nodes);
	n = tree_test_build(test, &root, nodes, &ctx);
	for (i = 0; i < n; i += 3)
		nodes[i].stale = true;

	for (i = 1; i < n; i += 3) {
		u64 key = ksm_content_key(nodes[i].page);
		int tries = 0, err;

		/* As the stable tree will: drop what is stale, search again. */
		while ((err = ksm_tree_find(&root, key, nodes[i].page,
					    &tree_test_ops, &ctx, &pos)) == -ESTALE) {
			struct tree_test_node *s = container_of(pos.stale,
						struct tree_test_node, t);

			KUNIT_EXPECT_TRUE(test, s->stale);
			KUNIT_EXPECT_EQ(test, key, s->t.key);
			ksm_tree_erase(&root, pos.stale);
			stale++;
			KUNIT_ASSERT_LT(test, ++tries, TREE_TEST_PAGES);
		}
		KUNIT_EXPECT_EQ(test, 0, err);
		KUNIT_EXPECT_PTR_EQ(test, &nodes[i].t, pos.match);
	}
	/* Keys tie often in these pages: stale nodes were met and named. */
	KUNIT_EXPECT_GT(test, stale, 0u);
	KUNIT_EXPECT_EQ(test, 0u, ctx.mapped);
}

static bool tree_test_full(struct ksm_tnode *node, void *ctx)
{
	return container_of(node, struct tree_test_node, t)->full;
}

static bool tree_test_same(struct ksm_tnode *a, struct ksm_tnode *b, void *ctx)
{
	return container_of(a, struct tree_test_node, t)->twins ==
	       container_of(b, struct tree_test_node, t)->twins;
}

static const struct ksm_tree_ops tree_test_twin_ops = {
	.map = tree_test_map,
	.unmap = tree_test_unmap,
	.full = tree_test_full,
	.same = tree_test_same,
};

#define TREE_TEST_TWINS 32

/*
 * Equal nodes that are full are passed over, to the right; past the first
 * one mapped, its twins are known by class and not mapped again.
 */
static void ksm_tree_test_passes_full_twins(struct kunit *test)
{
	struct tree_test_ctx ctx = { };
	struct tree_test_node *nodes;
	struct rb_root root = RB_ROOT;
	struct ksm_tree_pos pos;
	unsigned int i;
	u8 *page;
	u64 key;

	nodes = kunit_kcalloc(test, TREE_TEST_TWINS, sizeof(*nodes), GFP_KERNEL);
	page = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, nodes);
	KUNIT_ASSERT_NOT_NULL(test, page);
	page[100] = 7;
	key = ksm_content_key(page);
	for (i = 0; i < TREE_TEST_TWINS; i++) {
		/* Each new twin goes in once all before it are full. */
		nodes[i].page = page;
		nodes[i].twins = 1;
		nodes[i].full = true;
		KUNIT_ASSERT_EQ(test, 0, ksm_tree_find(&root, key, page,
						       &tree_test_twin_ops,
						       &ctx, &pos));
		KUNIT_ASSERT_NULL(test, pos.match);
		ksm_tree_insert(&root, &nodes[i].t, key, &pos);
	}
	nodes[TREE_TEST_TWINS - 1].full = false;
	ctx.maps = 0;
	KUNIT_ASSERT_EQ(test, 0, ksm_tree_find(&root, key, page,
					       &tree_test_twin_ops, &ctx, &pos));
	KUNIT_EXPECT_PTR_EQ(test, &nodes[TREE_TEST_TWINS - 1].t, pos.match);
	KUNIT_EXPECT_EQ(test, 1u, ctx.maps);
	KUNIT_EXPECT_EQ(test, 0u, ctx.mapped);
}

static struct kunit_case ksm_tree_test_cases[] = {
	KUNIT_CASE(ksm_tree_test_keeps_memcmp_order),
	KUNIT_CASE(ksm_tree_test_finds_contents_not_addresses),
	KUNIT_CASE(ksm_tree_test_keys_spare_mapping),
	KUNIT_CASE(ksm_tree_test_names_stale_nodes),
	KUNIT_CASE(ksm_tree_test_passes_full_twins),
	{},
};

static struct kunit_suite ksm_tree_test_suite = {
	.name = "ksm_tree",
	.test_cases = ksm_tree_test_cases,
};

kunit_test_suite(ksm_tree_test_suite);

#endif /* _MM_KSM_TESTS_TREE_KUNIT_H */
