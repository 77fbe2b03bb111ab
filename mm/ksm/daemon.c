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

/* Held by ksmd around each batch, and by knob writes that need it idle. */
DEFINE_MUTEX(ksm_lock);

struct ksm_knobs ksm_knobs = {
	.run = KSM_RUN_STOP,
	.pages_to_scan = 100,
	.sleep_millisecs = 20,
	.merge_across_nodes = 1,
	.max_page_sharing = 256,
	.chains_prune_millisecs = 2000,
	.smart_scan = true,
	.advisor = KSM_ADVISOR_NONE,
	.advisor_max_cpu = 70,
	.advisor_min_pages = 500,
	.advisor_max_pages = 30000,
	.advisor_target_scan_time = 200,
};

struct ksm_stats ksm_stats;

/* Mappings of the zero page that KSM placed (include/linux/ksm.h). */
atomic_long_t ksm_zero_pages = ATOMIC_LONG_INIT(0);

static DECLARE_WAIT_QUEUE_HEAD(ksmd_idle);	/* stopped, or nothing to scan */
static DECLARE_WAIT_QUEUE_HEAD(ksmd_pause);	/* between two batches */

/* Set while memory goes offline: KSM pages there must not be looked at. */
bool ksm_offlining;
static DECLARE_WAIT_QUEUE_HEAD(ksm_offline_wait);

/**
 * ksm_wait_while_offlining() - hold off until memory offlining is over
 *
 * For knob writes that change the trees, as 6.12 does.
 *
 * Context: ksm_lock held; dropped while waiting.
 */
void ksm_wait_while_offlining(void)
{
	lockdep_assert_held(&ksm_lock);
	while (ksm_offlining) {
		mutex_unlock(&ksm_lock);
		wait_event(ksm_offline_wait, !READ_ONCE(ksm_offlining));
		mutex_lock(&ksm_lock);
	}
}

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

static bool ksmd_nudged;	/* woken: orphans are worth a look */

/**
 * ksm_daemon_wake() - make ksmd look at its knobs and its work again
 */
void ksm_daemon_wake(void)
{
	WRITE_ONCE(ksmd_nudged, true);
	wake_up_interruptible(&ksmd_idle);
	wake_up_interruptible(&ksmd_pause);
}

static bool pause_over(unsigned int ms)
{
	return ms != READ_ONCE(ksm_knobs.sleep_millisecs) || kthread_should_stop();
}

static bool idle_over(void)
{
	return ksmd_should_run() || kthread_should_stop() ||
	       (READ_ONCE(ksmd_nudged) && ksm_stable_has_orphans());
}

/* Idle looks at orphans again this many times without progress. */
#define KSM_ORPHAN_RETRIES	8

static int ksmd_fn(void *unused)
{
	unsigned int ms, retries = 0;

	set_freezable();
	set_user_nice(current, 5);
	while (!kthread_should_stop()) {
		WRITE_ONCE(ksmd_nudged, false);
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
			wait_event_freezable_timeout(ksmd_pause, pause_over(ms),
						     msecs_to_jiffies(ms));
		} else if (ksm_stable_has_orphans() &&
			   retries < KSM_ORPHAN_RETRIES) {
			/*
			 * KSM pages of exited mms are unmapped just after
			 * ksmd forgot them: look at their nodes again soon,
			 * but not for ever (a page may stay mapped unnamed).
			 */
			wait_event_freezable_timeout(ksmd_idle, idle_over(), HZ);
		} else {
			retries = 0;
			wait_event_freezable(ksmd_idle, idle_over());
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
		WRITE_ONCE(ksm_offlining, true);
		mutex_unlock(&ksm_lock);
		break;
	case MEM_OFFLINE:
	case MEM_CANCEL_OFFLINE:
		mutex_lock(&ksm_lock);
		if (action == MEM_OFFLINE)
			ksm_stable_prune(mn->start_pfn,
					 mn->start_pfn + mn->nr_pages);
		WRITE_ONCE(ksm_offlining, false);
		mutex_unlock(&ksm_lock);
		wake_up_all(&ksm_offline_wait);
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
