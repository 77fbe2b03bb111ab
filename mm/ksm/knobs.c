// SPDX-License-Identifier: GPL-2.0
/*
 * KSM's shared state, at the bottom of the subsystem: the knobs of
 * /sys/kernel/mm/ksm, the statistics, the lock ksmd works under, and the
 * ways to wake ksmd or hold it off.  Every other file of mm/ksm/ may use
 * these; this file uses none of them.
 */
#include <linux/ksm.h>
#include <linux/mutex.h>
#include <linux/wait.h>

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

DECLARE_WAIT_QUEUE_HEAD(ksm_idle_wait);		/* stopped, or nothing to scan */
DECLARE_WAIT_QUEUE_HEAD(ksm_pause_wait);	/* between two batches */
bool ksm_nudged;				/* woken: orphans are worth a look */

/**
 * ksm_daemon_wake() - make ksmd look at its knobs and its work again
 */
void ksm_daemon_wake(void)
{
	WRITE_ONCE(ksm_nudged, true);
	wake_up_interruptible(&ksm_idle_wait);
	wake_up_interruptible(&ksm_pause_wait);
}

/* Set while memory goes offline: KSM pages there must not be looked at. */
bool ksm_offlining;
static DECLARE_WAIT_QUEUE_HEAD(ksm_offline_wait);

/**
 * ksm_set_offlining() - memory starts or stops going offline
 * @offlining: whether it does
 *
 * Context: ksm_lock held.
 */
void ksm_set_offlining(bool offlining)
{
	lockdep_assert_held(&ksm_lock);
	WRITE_ONCE(ksm_offlining, offlining);
	if (!offlining)
		wake_up_all(&ksm_offline_wait);
}

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
