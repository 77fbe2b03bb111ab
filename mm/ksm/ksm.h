/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interface of the KSM subsystem, shared by the files of mm/ksm/.
 * The rest of the kernel sees only include/linux/ksm.h.
 */
#ifndef _MM_KSM_KSM_H
#define _MM_KSM_KSM_H

#include <linux/bits.h>
#include <linux/list.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/rbtree.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/xarray.h>

/* 8-byte words in a page */
#define KSM_WORDS		(PAGE_SIZE / sizeof(u64))

/*
 * An order key holds, from the top: how many words precede the first
 * non-zero one, counted down from KSM_WORDS (so that it needs
 * PAGE_SHIFT - 2 bits), then the top bits of that word read big-endian.
 */
#define KSM_KEY_INDEX_BITS	(PAGE_SHIFT - 2)
#define KSM_KEY_VALUE_BITS	(64 - KSM_KEY_INDEX_BITS)

/*
 * Tracked pages.  A registered mm keeps one xarray slot per page it has
 * seen present in a mergeable VMA, indexed by virtual page number.  The
 * slot of a candidate is a value entry packing all we know of the page,
 * so a candidate costs no allocation of its own; the slot of a merged page
 * points to the stable node of its KSM page.
 */
struct ksm_cand {
	u32 sig;	/* low bits of the signature at the last visit */
	u8 age;		/* visits the page stayed unmerged, saturating */
	u8 skip;	/* visits still to skip (smart scan) */
	u8 flips;	/* how often it changed lately, saturating */
	u8 breaks;	/* how often its merges broke lately, saturating */
	bool unshared;	/* put in the unstable tree, not visited since */
};

/* Value entries have BITS_PER_LONG - 1 bits: the signature takes what is left. */
#define KSM_CAND_AGE_BITS	5
#define KSM_CAND_SKIP_BITS	4
#define KSM_CAND_FLIPS_BITS	3
#define KSM_CAND_BREAKS_BITS	3
#define KSM_CAND_SIG_BITS	(BITS_PER_LONG == 64 ? 32 : 15)
#define KSM_CAND_AGE_MAX	((1U << KSM_CAND_AGE_BITS) - 1)
#define KSM_CAND_SKIP_MAX	((1U << KSM_CAND_SKIP_BITS) - 1)
#define KSM_CAND_FLIPS_MAX	((1U << KSM_CAND_FLIPS_BITS) - 1)
#define KSM_CAND_BREAKS_MAX	((1U << KSM_CAND_BREAKS_BITS) - 1)

#define KSM_CAND_AGE_SHIFT	KSM_CAND_SIG_BITS
#define KSM_CAND_SKIP_SHIFT	(KSM_CAND_AGE_SHIFT + KSM_CAND_AGE_BITS)
#define KSM_CAND_FLIPS_SHIFT	(KSM_CAND_SKIP_SHIFT + KSM_CAND_SKIP_BITS)
#define KSM_CAND_BREAKS_SHIFT	(KSM_CAND_FLIPS_SHIFT + KSM_CAND_FLIPS_BITS)
#define KSM_CAND_UNSHARED_SHIFT	(KSM_CAND_BREAKS_SHIFT + KSM_CAND_BREAKS_BITS)
static_assert(KSM_CAND_UNSHARED_SHIFT + 1 <= BITS_PER_XA_VALUE);

/* Pack a candidate into an xarray value entry; out-of-range fields clamp. */
static inline void *ksm_cand_entry(struct ksm_cand c)
{
	unsigned long v = c.sig & (BIT(KSM_CAND_SIG_BITS) - 1);

	v |= (unsigned long)min_t(unsigned int, c.age, KSM_CAND_AGE_MAX) <<
	     KSM_CAND_AGE_SHIFT;
	v |= (unsigned long)min_t(unsigned int, c.skip, KSM_CAND_SKIP_MAX) <<
	     KSM_CAND_SKIP_SHIFT;
	v |= (unsigned long)min_t(unsigned int, c.flips, KSM_CAND_FLIPS_MAX) <<
	     KSM_CAND_FLIPS_SHIFT;
	v |= (unsigned long)min_t(unsigned int, c.breaks, KSM_CAND_BREAKS_MAX) <<
	     KSM_CAND_BREAKS_SHIFT;
	v |= (unsigned long)c.unshared << KSM_CAND_UNSHARED_SHIFT;
	return xa_mk_value(v);
}

static inline struct ksm_cand ksm_entry_cand(const void *entry)
{
	unsigned long v = xa_to_value(entry);

	return (struct ksm_cand) {
		.sig = v & (BIT(KSM_CAND_SIG_BITS) - 1),
		.age = (v >> KSM_CAND_AGE_SHIFT) & KSM_CAND_AGE_MAX,
		.skip = (v >> KSM_CAND_SKIP_SHIFT) & KSM_CAND_SKIP_MAX,
		.flips = (v >> KSM_CAND_FLIPS_SHIFT) & KSM_CAND_FLIPS_MAX,
		.breaks = (v >> KSM_CAND_BREAKS_SHIFT) & KSM_CAND_BREAKS_MAX,
		.unshared = (v >> KSM_CAND_UNSHARED_SHIFT) & 1,
	};
}

/*
 * The part of a full signature a candidate keeps: a change then goes
 * unnoticed with probability 2^-KSM_CAND_SIG_BITS.
 */
static inline u32 ksm_sig_fold(u64 sig)
{
	return lower_32_bits(sig ^ sig >> 32) & (BIT(KSM_CAND_SIG_BITS) - 1);
}

struct ksm_sharer;

enum ksm_track_state {
	KSM_UNTRACKED,		/* no slot: never seen, or forgotten */
	KSM_CANDIDATE,		/* value entry */
	KSM_MERGED,		/* pointer to its sharer entry */
};

/*
 * What the tracepoints call a page's rmap_item: a token for the tracked
 * page (its mm and address), the same for all its events.
 */
static inline void *ksm_rmap_token(const void *kmm, unsigned long addr)
{
	return (void *)((unsigned long)kmm ^ (addr & PAGE_MASK));
}

/* track.c */
enum ksm_track_state ksm_track_load(struct xarray *pages, unsigned long addr,
				    struct ksm_cand *cand,
				    struct ksm_sharer **sharer);
int ksm_track_store_cand(struct xarray *pages, unsigned long addr,
			 struct ksm_cand cand, gfp_t gfp);
void ksm_track_store_sharer(struct xarray *pages, unsigned long addr,
			    struct ksm_sharer *sharer);
void ksm_track_forget(struct xarray *pages, unsigned long addr);
bool ksm_cand_skip(struct ksm_cand *cand, bool smart);
void ksm_cand_broken(struct ksm_cand *cand, u32 sig, bool smart,
		     unsigned int hist);
unsigned int ksm_cand_hist(struct ksm_cand cand);
unsigned int ksm_hist_steady(unsigned int hist);
bool ksm_cand_settle(struct ksm_cand *cand, u32 sig, bool smart);

/*
 * Content trees (tree.c): a node caches its page's order key; reaching the
 * page itself is the owner's business, through these ops.
 */
struct ksm_tnode {
	struct rb_node rb;
	u64 key;
};

struct ksm_tree_ops {
	/* Map the node's page for reading, or NULL if the node went stale. */
	const void *(*map)(struct ksm_tnode *node, void *ctx);
	void (*unmap)(struct ksm_tnode *node, const void *addr, void *ctx);
	/* Optional: an equal node that takes no more; the search goes on right. */
	bool (*full)(struct ksm_tnode *node, void *ctx);
	/* Optional: are the pages of two nodes known to be equal? */
	bool (*same)(struct ksm_tnode *a, struct ksm_tnode *b, void *ctx);
};

struct ksm_tree_pos {
	struct ksm_tnode *match;	/* node of equal contents */
	struct ksm_tnode *stale;	/* node whose page could not be had */
	struct rb_node *parent;		/* where to insert, if no match */
	struct rb_node **link;
};

int ksm_tree_find(struct rb_root *root, u64 key, const void *content,
		  const struct ksm_tree_ops *ops, void *ctx,
		  struct ksm_tree_pos *pos);
void ksm_tree_insert(struct rb_root *root, struct ksm_tnode *node, u64 key,
		     struct ksm_tree_pos *pos);
void ksm_tree_erase(struct rb_root *root, struct ksm_tnode *node);
int ksm_tree_nid(struct page *page);

/*
 * The engine: knobs, statistics, the registry of mms, the scan.
 */
enum ksm_run_mode {
	KSM_RUN_STOP,
	KSM_RUN_MERGE,
	KSM_RUN_UNMERGE,
};

enum ksm_advisor_mode {
	KSM_ADVISOR_NONE,
	KSM_ADVISOR_SCAN_TIME,
};

/* What /sys/kernel/mm/ksm lets the administrator set (6.12 defaults). */
struct ksm_knobs {
	unsigned int run;
	unsigned int pages_to_scan;
	unsigned int sleep_millisecs;
	unsigned int merge_across_nodes;
	bool use_zero_pages;
	unsigned int max_page_sharing;
	unsigned int chains_prune_millisecs;
	bool smart_scan;
	unsigned int advisor;
	unsigned long advisor_max_cpu;
	unsigned long advisor_min_pages;
	unsigned long advisor_max_pages;
	unsigned long advisor_target_scan_time;
};

/*
 * Counters shown in /sys/kernel/mm/ksm, written by ksmd under ksm_lock;
 * tracked also by madvise() and exit, which never take ksm_lock.
 */
struct ksm_stats {
	unsigned long pages_scanned;
	unsigned long pages_shared;
	unsigned long pages_sharing;
	unsigned long pages_unshared;
	unsigned long pages_skipped;
	unsigned long full_scans;
	unsigned long stable_node_chains;
	unsigned long stable_node_dups;
	atomic_long_t tracked;		/* all tracked pages: the "rmap items" */
};

/* knobs.c: the state every other file shares; it calls none of them. */
extern struct ksm_knobs ksm_knobs;
extern struct ksm_stats ksm_stats;
extern struct mutex ksm_lock;
extern struct wait_queue_head ksm_idle_wait;
extern struct wait_queue_head ksm_pause_wait;
extern bool ksm_nudged;
extern bool ksm_offlining;
void ksm_daemon_wake(void);
void ksm_set_offlining(bool offlining);
void ksm_wait_while_offlining(void);

/*
 * A registered mm: one per mm with MMF_VM_MERGEABLE.  When the mm exits,
 * it leaves the hash for the dead list; ksmd forgets its pages and frees
 * it at once, or at the end of the pass if unstable nodes still name it.
 */
struct ksm_mm {
	struct mm_struct *mm;		/* mmgrab()bed until freed */
	struct hlist_node hash;		/* in the registry, by mm */
	struct list_head scan;		/* in ksm_mm_list, in scan order */
	struct xarray pages;		/* tracked pages (track.c) */
	unsigned int unodes;		/* unstable nodes naming it */
	bool dead;			/* the mm exited */
};

/*
 * A sharer: a tracked page mapped to a KSM page.  Its anon_vma is where
 * rmap walks find the mapping, and in forked children the copies of it.
 * The page's slot points here, so that a sharer leaves in constant time;
 * sharers move only under ksm_lock, which then updates their slots.
 */
struct ksm_sharer {
	struct ksm_stable *stable;
	struct ksm_mm *kmm;
	struct anon_vma *anon_vma;	/* referenced */
	unsigned long where;	/* address; history in the low bits */
};

/*
 * A merged page keeps a little of its candidate past (ksm_cand_hist()),
 * so that a page whose merges keep breaking is told from one written once.
 */
#define KSM_HIST_MASK		(~PAGE_MASK)
static_assert(KSM_CAND_FLIPS_BITS + KSM_CAND_BREAKS_BITS <= PAGE_SHIFT);

static inline unsigned long ksm_sharer_addr(const struct ksm_sharer *sh)
{
	return READ_ONCE(sh->where) & PAGE_MASK;
}

static inline unsigned int ksm_sharer_hist(const struct ksm_sharer *sh)
{
	return READ_ONCE(sh->where) & KSM_HIST_MASK;
}

/*
 * A stable node: one KSM page, in the stable tree of its NUMA node (or
 * the one tree) while its page lives.  The page's ->mapping points here;
 * the node lives on while a sharer names it or its page lives.  Sharers
 * change only under ksm_lock and, while the page lives, its folio lock,
 * which is what rmap walks hold.  A node whose last sharer left while
 * its page lived is an orphan: the end of the pass looks at it again.
 */
struct ksm_stable {
	struct ksm_tnode tn;
	unsigned long kpfn;		/* follows migration */
	struct ksm_sharer *sharers;	/* kvmalloc()ed array */
	unsigned int nr;
	unsigned int cap;
	u64 twins;			/* the same for KSM pages of equal contents */
	struct ksm_stable *orphan_next;	/* on the orphans list */
	int nid;			/* the tree it is in */
	bool orphan;			/* on the orphans list */
	bool pending;			/* new: counted once its twin joins */
};

/*
 * Metadata bytes per tracked page, for the profit figures: a candidate is
 * one xarray slot and its share of the node; merged pages cost more (the
 * stable tree), counted apart.
 */
#define KSM_TRACKED_BYTES	(sizeof(void *) + sizeof(struct xa_node) / XA_CHUNK_SIZE)

/*
 * ksmd's cursor in ksm_mm_list: the mm being scanned and where to resume
 * in it.  Moved under ksm_mm_lock (an exit moves it too), used by ksmd
 * under ksm_lock.
 */
struct ksm_cursor {
	struct ksm_mm *kmm;	/* NULL between two passes */
	unsigned long addr;
	bool mergeable;		/* the mm showed a mergeable VMA this pass */
	bool pass_over;		/* a pass ended: its end is due */
	unsigned long passes;	/* passes ended */
};

/* registry.c */
extern struct ksm_cursor ksm_cursor;
bool ksm_cursor_start(void);
void ksm_cursor_advance(struct ksm_mm *kmm);
bool ksm_cursor_pass_ended(void);
void ksm_cursor_reset(void);
int ksm_registry_init(void);
extern spinlock_t ksm_mm_lock;
extern struct list_head ksm_mm_list;
extern struct list_head ksm_dead_list;
unsigned long ksm_mm_forget_range(struct ksm_mm *kmm, unsigned long start,
				  unsigned long end);
int ksm_unmerge_all(void);
void ksm_reap_dead(void);
void ksm_free_graveyard(void);
void ksm_mm_put_unode(struct ksm_mm *kmm);
bool ksm_mm_retire(struct ksm_mm *kmm);
struct vm_area_struct *ksm_vma(struct mm_struct *mm, unsigned long addr);
bool ksm_process_mergeable(struct mm_struct *mm);
struct page *ksm_lookup_page(struct vm_area_struct *vma, unsigned long addr);

/* scan.c */
void ksm_scan_batch(unsigned int budget);
void ksm_scan_restart(void);
void ksm_advisor_reset(void);

/* The stable node of a KSM folio; NULL while it has none. */
static inline struct ksm_stable *ksm_folio_stable(struct folio *folio)
{
	unsigned long mapping = (unsigned long)READ_ONCE(folio->mapping);

	if ((mapping & PAGE_MAPPING_FLAGS) != PAGE_MAPPING_KSM)
		return NULL;
	return (struct ksm_stable *)(mapping & ~PAGE_MAPPING_FLAGS);
}

/* stable.c */
int ksm_stable_init(void);
struct ksm_stable *ksm_stable_new(void);
void ksm_stable_free(struct ksm_stable *s);
void ksm_stable_bind(struct ksm_stable *s, struct folio *folio);
void ksm_stable_unbind(struct ksm_stable *s, struct folio *folio);
struct folio *ksm_stable_folio(struct ksm_stable *s, bool lock);
struct ksm_stable *ksm_stable_find(u64 key, const void *content, int nid);
void ksm_stable_insert(struct ksm_stable *s, u64 key, int nid);
int ksm_stable_reserve(struct ksm_stable *s);
struct ksm_sharer *ksm_stable_add(struct ksm_stable *s, struct ksm_mm *kmm,
				  unsigned long addr, struct anon_vma *anon_vma,
				  unsigned int hist);
void ksm_stable_drop(struct ksm_sharer *sh);
void ksm_stable_drop_locked(struct ksm_sharer *sh, struct folio *folio);
void ksm_stable_pass_start(void);
struct ksm_stable *ksm_stable_fuller_twin(struct ksm_stable *s);
void ksm_stable_confirm(struct ksm_stable *s);
void ksm_stable_moved(struct ksm_stable *s, struct folio *folio);
bool ksm_stable_end_pass(void);
bool ksm_stable_has_orphans(void);
void ksm_stable_prune(unsigned long start_pfn, unsigned long end_pfn);
int ksm_stable_remove_all(void);
bool ksm_stable_maps(struct ksm_stable *s, struct vm_area_struct *vma,
		     unsigned long addr);

/* unstable.c: this pass's candidates */
struct ksm_unode {
	struct ksm_tnode tn;
	struct ksm_mm *kmm;
	unsigned long addr;
};

int ksm_unstable_init(void);
struct ksm_unode *ksm_unstable_find(u64 key, const void *content,
				    struct page *page, int nid, bool *inserted,
				    struct ksm_mm *kmm, unsigned long addr);
void ksm_unstable_erase(struct ksm_unode *u, int nid);
void ksm_unstable_reset(void);

/*
 * Pages the caller holds a reference to besides the one it merges: scan.c
 * pins a batch of pages, and one later in the batch may be the twin that
 * merge.c write-protects, whose reference count must allow for the pin.
 */
struct ksm_pins {
	struct page *const *page;	/* NULL entries hold nothing */
	unsigned int nr;
};

static inline unsigned int ksm_pins_count(const struct ksm_pins *pins,
					  const struct page *page)
{
	unsigned int i, n = 0;

	for (i = 0; pins && i < pins->nr; i++)
		n += pins->page[i] == page;
	return n;
}

/* merge.c */
bool ksm_merge_page(struct ksm_mm *kmm, unsigned long addr, struct page *page,
		    unsigned int hist, const struct ksm_pins *pins);
void ksm_attach_page(struct ksm_mm *kmm, unsigned long addr,
		     struct page *page);
void ksm_merge_twin(struct ksm_sharer *sh, struct page *page,
		    struct ksm_stable *t);

/* unmerge.c */
int ksm_break_range(struct vm_area_struct *vma, unsigned long start,
		    unsigned long end);

/* sysfs.c */
int ksm_sysfs_init(void);

/* content.c */
u64 ksm_content_key(const void *addr);
int ksm_content_cmp(u64 key_a, const void *a, u64 key_b, const void *b);
u64 ksm_content_sig(const void *addr);

#endif /* _MM_KSM_KSM_H */
