/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers of the guest's workload programs: see ksm_guest.c. */
#ifndef KSM_GUEST_H
#define KSM_GUEST_H

#define KSM "/sys/kernel/mm/ksm/"

unsigned long long mix(unsigned long long x);	/* a bijective hash */
long read_long(const char *path);		/* first number in a file, or -1 */
long ksm_read(const char *name);		/* a KSM sysfs number, or -1 */
int ksm_write(const char *name, long v);	/* 0 or -1 */
int ksmd_pid(void);
double task_cpu(int pid);			/* utime + stime, seconds */
double now(void);				/* monotonic seconds */
long proc_field(const char *path, const char *name, char sep);
long meminfo_kb(const char *name);		/* a /proc/meminfo line, or -1 */
long ksm_tracked(void);				/* pages KSM tracks */

/*
 * The VM-like memory of ksm_demo and ksm_bench: page i of every process
 * is of the same kind; shared pages hold the same words in every
 * process, unique pages words of their own, zero pages zeroes.
 */
enum page_kind { PAGE_SHARED, PAGE_ZERO, PAGE_UNIQUE, PAGE_KINDS };

enum page_kind page_kind(long i, int shared_pct, int zero_pct);
void page_fill(unsigned long long *p, long page_size, enum page_kind k,
	       long i, int proc);
long attainable_sharing(const long counts[PAGE_KINDS], int nprocs);

#endif /* KSM_GUEST_H */
