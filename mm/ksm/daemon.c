// SPDX-License-Identifier: GPL-2.0
/*
 * ksmd: the KSM daemon and its pacing; KSM's setup at boot.
 */
#include <linux/freezer.h>
#include <linux/kthread.h>
#include <linux/memory.h>
#include <linux/ksm.h>
#include <linux/sched.h>
#include <linux/wait.h>

#define CREATE_TRACE_POINTS
#include <trace/events/ksm.h>

#include "ksm.h"

static bool ksmd_should_scan(void)
{
	return READ_ONCE(ksm_knobs.run) == KSM_RUN_MERGE &&
	       !list_empty_careful(&ksm_mm_list) && !READ_ONCE(ksm_offlining);
}

/* Exited mms are forgotten even while ksmd does not scan. */
static bool ksmd_should_run(void)
{
	return ksmd_should_scan() ||
	       (!list_empty_careful(&ksm_dead_list) && !READ_ONCE(ksm_offlining));
}

static bool pause_over(unsigned int ms)
{
	return ms != READ_ONCE(ksm_knobs.sleep_millisecs) || kthread_should_stop();
}

static bool idle_over(void)
{
	return ksmd_should_run() || kthread_should_stop() ||
	       (READ_ONCE(ksm_nudged) && ksm_stable_has_orphans());
}

/* Idle looks at orphans again this many times without progress. */
#define KSM_ORPHAN_RETRIES	8

static int ksmd_fn(void *unused)
{
	unsigned int ms, retries = 0;

	set_freezable();
	set_user_nice(current, 5);
	while (!kthread_should_stop()) {
		WRITE_ONCE(ksm_nudged, false);
		mutex_lock(&ksm_lock);
		if (!ksm_offlining) {
			ksm_reap_dead();
			if (ksmd_should_scan())
				ksm_scan_batch(READ_ONCE(ksm_knobs.pages_to_scan));
			else if (ksm_stable_has_orphans())
				/* No pass will end to settle them. */
				retries = ksm_stable_end_pass() ? 0 : retries + 1;
		}
		mutex_unlock(&ksm_lock);
		/*
		 * Yield even when sleep_millisecs is 0 and the batch found no
		 * page to visit: the last put of an exiting mm may wait for
		 * a kworker on this CPU, and the mm stays registered until then.
		 */
		cond_resched();

		if (ksmd_should_scan()) {
			/* A new sleep_millisecs takes effect at once. */
			ms = READ_ONCE(ksm_knobs.sleep_millisecs);
			wait_event_freezable_timeout(ksm_pause_wait, pause_over(ms),
						     msecs_to_jiffies(ms));
		} else if (ksm_stable_has_orphans() &&
			   retries < KSM_ORPHAN_RETRIES) {
			/*
			 * KSM pages of exited mms are unmapped just after
			 * ksmd forgot them: look at their nodes again soon,
			 * but not for ever (a page may stay mapped unnamed).
			 */
			wait_event_freezable_timeout(ksm_idle_wait, idle_over(), HZ);
		} else {
			retries = 0;
			wait_event_freezable(ksm_idle_wait, idle_over());
		}
	}
	return 0;
}

/*
 * Memory going offline: its KSM pages are migrated away (their nodes
 * follow), but nodes of pages freed there still name its pfns.  Hold
 * ksmd off until they are pruned.
 */
static int ksm_memory_callback(struct notifier_block *nb, unsigned long action,
			       void *arg)
{
	struct memory_notify *mn = arg;

	switch (action) {
	case MEM_GOING_OFFLINE:
		mutex_lock(&ksm_lock);
		ksm_set_offlining(true);
		mutex_unlock(&ksm_lock);
		break;
	case MEM_OFFLINE:
	case MEM_CANCEL_OFFLINE:
		mutex_lock(&ksm_lock);
		if (action == MEM_OFFLINE)
			ksm_stable_prune(mn->start_pfn,
					 mn->start_pfn + mn->nr_pages);
		ksm_set_offlining(false);
		mutex_unlock(&ksm_lock);
		ksm_daemon_wake();
		break;
	}
	return NOTIFY_OK;
}

static int __init ksm_init(void)
{
	struct task_struct *ksmd;
	int err;

	err = ksm_registry_init();
	if (!err)
		err = ksm_stable_init();
	if (!err)
		err = ksm_unstable_init();
	if (err)
		return err;
	hotplug_memory_notifier(ksm_memory_callback, KSM_CALLBACK_PRI);
	ksmd = kthread_run(ksmd_fn, NULL, "ksmd");
	if (IS_ERR(ksmd)) {
		pr_err("ksm: cannot start ksmd\n");
		return PTR_ERR(ksmd);
	}
	if (!IS_ENABLED(CONFIG_SYSFS)) {
		/* Nobody could ever start it. */
		ksm_knobs.run = KSM_RUN_MERGE;
		return 0;
	}
	err = ksm_sysfs_init();
	if (err) {
		pr_err("ksm: cannot register in sysfs\n");
		kthread_stop(ksmd);
	}
	return err;
}
subsys_initcall(ksm_init);
