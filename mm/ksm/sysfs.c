// SPDX-License-Identifier: GPL-2.0
/*
 * KSM's face in /sys/kernel/mm/ksm: knobs and statistics, with 6.12's
 * names, formats, defaults and errnos.  Most knobs are plain numbers
 * described by a table; the few with rules of their own have their own
 * store functions.
 */
#include <linux/kobject.h>
#include <linux/ksm.h>
#include <linux/kstrtox.h>
#include <linux/mm.h>
#include <linux/oom.h>
#include <linux/sysfs.h>

#include "ksm.h"

enum knob_kind { KNOB_UINT, KNOB_ULONG, KNOB_BOOL };

/* A number knob: parse errors give -EINVAL, as 6.12's do for these. */
struct ksm_knob {
	struct kobj_attribute attr;
	enum knob_kind kind;
	void *val;
	unsigned long min;		/* smaller values: -EINVAL */
	bool wake;			/* ksmd must see the change at once */
	bool owned_by_advisor;		/* -EINVAL while the advisor runs */
};

static ssize_t knob_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	struct ksm_knob *k = container_of(attr, struct ksm_knob, attr);

	switch (k->kind) {
	case KNOB_UINT:
		return sysfs_emit(buf, "%u\n", READ_ONCE(*(unsigned int *)k->val));
	case KNOB_ULONG:
		return sysfs_emit(buf, "%lu\n", READ_ONCE(*(unsigned long *)k->val));
	case KNOB_BOOL:
		return sysfs_emit(buf, "%u\n", READ_ONCE(*(bool *)k->val));
	}
	return -EINVAL;
}

static ssize_t knob_store(struct kobject *kobj, struct kobj_attribute *attr,
			  const char *buf, size_t count)
{
	struct ksm_knob *k = container_of(attr, struct ksm_knob, attr);
	unsigned long ul;
	unsigned int u;
	bool b;

	if (k->owned_by_advisor &&
	    READ_ONCE(ksm_knobs.advisor) != KSM_ADVISOR_NONE)
		return -EINVAL;
	switch (k->kind) {
	case KNOB_UINT:
		if (kstrtouint(buf, 10, &u) || u < k->min)
			return -EINVAL;
		WRITE_ONCE(*(unsigned int *)k->val, u);
		break;
	case KNOB_ULONG:
		if (kstrtoul(buf, 10, &ul) || ul < k->min)
			return -EINVAL;
		WRITE_ONCE(*(unsigned long *)k->val, ul);
		break;
	case KNOB_BOOL:
		if (kstrtobool(buf, &b))
			return -EINVAL;
		WRITE_ONCE(*(bool *)k->val, b);
		break;
	}
	if (k->wake)
		ksm_daemon_wake();
	return count;
}

#define KNOB(_name, _kind, _field, ...)					\
	static struct ksm_knob knob_##_name = {				\
		.attr = __ATTR(_name, 0644, knob_show, knob_store),	\
		.kind = _kind,						\
		.val = &ksm_knobs._field,				\
		__VA_ARGS__						\
	}

KNOB(pages_to_scan, KNOB_UINT, pages_to_scan, .owned_by_advisor = true);
KNOB(sleep_millisecs, KNOB_UINT, sleep_millisecs, .wake = true);
KNOB(use_zero_pages, KNOB_BOOL, use_zero_pages);
KNOB(stable_node_chains_prune_millisecs, KNOB_UINT, chains_prune_millisecs);
KNOB(smart_scan, KNOB_BOOL, smart_scan);
KNOB(advisor_max_cpu, KNOB_ULONG, advisor_max_cpu);
KNOB(advisor_min_pages_to_scan, KNOB_ULONG, advisor_min_pages);
KNOB(advisor_max_pages_to_scan, KNOB_ULONG, advisor_max_pages);
KNOB(advisor_target_scan_time, KNOB_ULONG, advisor_target_scan_time, .min = 1);

static ssize_t run_show(struct kobject *kobj, struct kobj_attribute *attr,
			char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_knobs.run));
}

/*
 * run=2: unmerge every mm and forget its pages, start the scan afresh,
 * and, as 6.12, free the KSM pages that nothing maps and count anew.
 */
static int unmerge_everything(void)
{
	int err = ksm_unmerge_all();

	ksm_reap_dead();
	ksm_scan_restart();
	if (err)
		return err;
	ksm_stable_remove_all();
	ksm_stats.full_scans = 0;
	return 0;
}

static ssize_t run_store(struct kobject *kobj, struct kobj_attribute *attr,
			 const char *buf, size_t count)
{
	unsigned int mode;
	ssize_t ret = count;
	int err;

	if (kstrtouint(buf, 10, &mode) || mode > KSM_RUN_UNMERGE)
		return -EINVAL;

	mutex_lock(&ksm_lock);
	ksm_wait_while_offlining();
	if (ksm_knobs.run != mode) {
		WRITE_ONCE(ksm_knobs.run, mode);
		if (mode == KSM_RUN_UNMERGE) {
			/* Unmerging allocates: if memory runs out, kill us. */
			set_current_oom_origin();
			err = unmerge_everything();
			clear_current_oom_origin();
			if (err) {
				WRITE_ONCE(ksm_knobs.run, KSM_RUN_STOP);
				ret = err;
			}
		}
	}
	mutex_unlock(&ksm_lock);
	/* To merge, or to settle what unmerging left. */
	ksm_daemon_wake();
	return ret;
}

static struct kobj_attribute run_attr = __ATTR_RW(run);

/* Changing how KSM pages are built needs none of them to exist. */
static int change_layout(unsigned int *knob, unsigned int value)
{
	int err = 0;

	mutex_lock(&ksm_lock);
	ksm_wait_while_offlining();
	if (*knob != value) {
		/* KSM pages that nothing maps may go; any other is in the way. */
		if (ksm_stats.pages_shared || ksm_stable_remove_all())
			err = -EBUSY;
		else
			WRITE_ONCE(*knob, value);
	}
	mutex_unlock(&ksm_lock);
	return err;
}

static ssize_t max_page_sharing_show(struct kobject *kobj,
				     struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_knobs.max_page_sharing));
}

static ssize_t max_page_sharing_store(struct kobject *kobj,
				      struct kobj_attribute *attr,
				      const char *buf, size_t count)
{
	int value, err;

	err = kstrtoint(buf, 10, &value);
	if (err)
		return err;
	/* A KSM page starts out with two mappings. */
	if (value < 2)
		return -EINVAL;
	err = change_layout(&ksm_knobs.max_page_sharing, value);
	return err ? err : count;
}

static struct kobj_attribute max_page_sharing_attr = __ATTR_RW(max_page_sharing);

#ifdef CONFIG_NUMA
static ssize_t merge_across_nodes_show(struct kobject *kobj,
				       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(ksm_knobs.merge_across_nodes));
}

static ssize_t merge_across_nodes_store(struct kobject *kobj,
					struct kobj_attribute *attr,
					const char *buf, size_t count)
{
	unsigned long value;
	int err;

	err = kstrtoul(buf, 10, &value);
	if (err)
		return err;
	if (value > 1)
		return -EINVAL;
	err = change_layout(&ksm_knobs.merge_across_nodes, value);
	return err ? err : count;
}

static struct kobj_attribute merge_across_nodes_attr =
	__ATTR_RW(merge_across_nodes);
#endif

static const char * const advisor_names[] = {
	[KSM_ADVISOR_NONE] = "none",
	[KSM_ADVISOR_SCAN_TIME] = "scan-time",
};

static ssize_t advisor_mode_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	unsigned int cur = READ_ONCE(ksm_knobs.advisor), i;
	int len = 0;

	for (i = 0; i < ARRAY_SIZE(advisor_names); i++)
		len += sysfs_emit_at(buf, len, i == cur ? "%s[%s]" : "%s%s",
				     i ? " " : "", advisor_names[i]);
	return len + sysfs_emit_at(buf, len, "\n");
}

static ssize_t advisor_mode_store(struct kobject *kobj,
				  struct kobj_attribute *attr,
				  const char *buf, size_t count)
{
	int mode = sysfs_match_string(advisor_names, buf);

	if (mode < 0)
		return -EINVAL;
	mutex_lock(&ksm_lock);
	if (mode != ksm_knobs.advisor) {
		WRITE_ONCE(ksm_knobs.advisor, mode);
		/* Each mode starts from its own pace. */
		WRITE_ONCE(ksm_knobs.pages_to_scan, mode == KSM_ADVISOR_NONE ?
			   100 : ksm_knobs.advisor_min_pages);
		ksm_advisor_reset();
	}
	mutex_unlock(&ksm_lock);
	return count;
}

static struct kobj_attribute advisor_mode_attr = __ATTR_RW(advisor_mode);

/* Statistics */

struct ksm_stat {
	struct kobj_attribute attr;
	long (*get)(void);
};

#define STAT(_name, _expr)						\
	static long stat_get_##_name(void) { return (long)(_expr); }	\
	static struct ksm_stat stat_##_name = {				\
		.attr = __ATTR(_name, 0444, stat_show, NULL),		\
		.get = stat_get_##_name,				\
	}

static ssize_t stat_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	struct ksm_stat *s = container_of(attr, struct ksm_stat, attr);

	return sysfs_emit(buf, "%ld\n", s->get());
}

/* Tracked pages neither merged nor waiting in the unstable tree. */
static long pages_volatile(void)
{
	long v = atomic_long_read(&ksm_stats.tracked) -
		 READ_ONCE(ksm_stats.pages_shared) -
		 READ_ONCE(ksm_stats.pages_sharing) -
		 READ_ONCE(ksm_stats.pages_unshared);

	return max(v, 0L);	/* read without locks: may skew */
}

static long general_profit(void)
{
	return (READ_ONCE(ksm_stats.pages_sharing) +
		atomic_long_read(&ksm_zero_pages)) * PAGE_SIZE -
	       atomic_long_read(&ksm_stats.tracked) * KSM_TRACKED_BYTES;
}

STAT(pages_scanned, READ_ONCE(ksm_stats.pages_scanned));
STAT(pages_shared, READ_ONCE(ksm_stats.pages_shared));
STAT(pages_sharing, READ_ONCE(ksm_stats.pages_sharing));
STAT(pages_unshared, READ_ONCE(ksm_stats.pages_unshared));
STAT(pages_volatile, pages_volatile());
STAT(pages_skipped, READ_ONCE(ksm_stats.pages_skipped));
STAT(ksm_zero_pages, atomic_long_read(&ksm_zero_pages));
STAT(general_profit, general_profit());
STAT(full_scans, READ_ONCE(ksm_stats.full_scans));
STAT(stable_node_chains, READ_ONCE(ksm_stats.stable_node_chains));
STAT(stable_node_dups, READ_ONCE(ksm_stats.stable_node_dups));

static struct attribute *ksm_attrs[] = {
	&run_attr.attr,
	&knob_pages_to_scan.attr.attr,
	&knob_sleep_millisecs.attr.attr,
#ifdef CONFIG_NUMA
	&merge_across_nodes_attr.attr,
#endif
	&knob_use_zero_pages.attr.attr,
	&max_page_sharing_attr.attr,
	&knob_stable_node_chains_prune_millisecs.attr.attr,
	&knob_smart_scan.attr.attr,
	&advisor_mode_attr.attr,
	&knob_advisor_max_cpu.attr.attr,
	&knob_advisor_min_pages_to_scan.attr.attr,
	&knob_advisor_max_pages_to_scan.attr.attr,
	&knob_advisor_target_scan_time.attr.attr,
	&stat_pages_scanned.attr.attr,
	&stat_pages_shared.attr.attr,
	&stat_pages_sharing.attr.attr,
	&stat_pages_unshared.attr.attr,
	&stat_pages_volatile.attr.attr,
	&stat_pages_skipped.attr.attr,
	&stat_ksm_zero_pages.attr.attr,
	&stat_general_profit.attr.attr,
	&stat_full_scans.attr.attr,
	&stat_stable_node_chains.attr.attr,
	&stat_stable_node_dups.attr.attr,
	NULL,
};

static const struct attribute_group ksm_attr_group = {
	.attrs = ksm_attrs,
	.name = "ksm",
};

/**
 * ksm_sysfs_init() - create /sys/kernel/mm/ksm
 *
 * Return: 0, or the error of sysfs_create_group().
 */
int __init ksm_sysfs_init(void)
{
	return sysfs_create_group(mm_kobj, &ksm_attr_group);
}
