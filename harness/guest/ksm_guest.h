/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers of the guest's workload programs: see ksm_guest.c. */
#ifndef KSM_GUEST_H
#define KSM_GUEST_H

#define KSM "/sys/kernel/mm/ksm/"

unsigned long long mix(unsigned long long x);	/* a bijective hash */
long ksm_read(const char *name);		/* a KSM sysfs number, or -1 */
int ksm_write(const char *name, long v);	/* 0 or -1 */
int ksmd_pid(void);
double task_cpu(int pid);			/* utime + stime, seconds */
double now(void);				/* monotonic seconds */
long meminfo_kb(const char *name);		/* a /proc/meminfo line, or -1 */
long ksm_tracked(void);				/* pages KSM tracks */

#endif /* KSM_GUEST_H */
