// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers of the guest's workload programs (ksm_demo, ksm_bench): KSM's
 * sysfs files, ksmd's CPU time, /proc/meminfo, a clock, a hash.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ksm_guest.h"

unsigned long long mix(unsigned long long x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

/* The first number in a file, or -1. */
long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

long ksm_read(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), KSM "%s", name);
	return read_long(path);
}

int ksm_write(const char *name, long v)
{
	char path[128];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), KSM "%s", name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ret = fprintf(f, "%ld", v) < 0;
	return fclose(f) || ret ? -1 : 0;
}

int ksmd_pid(void)
{
	struct dirent *d;
	char path[300], comm[32];
	DIR *dir = opendir("/proc");
	int pid = -1;
	FILE *f;

	while (dir && pid < 0 && (d = readdir(dir))) {
		snprintf(path, sizeof(path), "/proc/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(comm, "ksmd\n"))
			pid = atoi(d->d_name);
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return pid;
}

/* utime + stime of a task in seconds. */
double task_cpu(int pid)
{
	unsigned long ut, st;
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The number after "name<sep>" in a /proc file of such lines; -1 if none. */
long proc_field(const char *path, const char *name, char sep)
{
	char line[256];
	long v = -1;
	size_t n = strlen(name);
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == sep) {
			v = atol(line + n + 1);
			break;
		}
	fclose(f);
	return v;
}

/* A line of /proc/meminfo, in kB; -1 if missing. */
long meminfo_kb(const char *name)
{
	return proc_field("/proc/meminfo", name, ':');
}

/* Pages KSM tracks: 6.12's rmap_items, our tracked slots. */
long ksm_tracked(void)
{
	return ksm_read("pages_shared") + ksm_read("pages_sharing") +
	       ksm_read("pages_unshared") + ksm_read("pages_volatile");
}

/* Same sequence in every process, so the kinds line up page for page. */
enum page_kind page_kind(long i, int shared_pct, int zero_pct)
{
	int r = mix(i + 1) % 100;

	if (r < shared_pct)
		return PAGE_SHARED;
	if (r < shared_pct + zero_pct)
		return PAGE_ZERO;
	return PAGE_UNIQUE;
}

void page_fill(unsigned long long *p, long page_size, enum page_kind k,
	       long i, int proc)
{
	unsigned long long seed;
	long w;

	/* mix() is a bijection: disjoint inputs give disjoint seeds. */
	if (k == PAGE_SHARED)
		seed = mix(i);
	else
		seed = mix(1ULL << 62 | (unsigned long long)proc << 40 | i);
	for (w = 0; w < page_size / 8; w++)
		p[w] = k == PAGE_ZERO ? 0 : mix(seed + w);
}

/*
 * pages_sharing once all is merged: each shared page is kept once, and
 * the zero pages of all processes fill KSM pages of max_page_sharing.
 */
long attainable_sharing(const long counts[PAGE_KINDS], int nprocs)
{
	long max_sharing = ksm_read("max_page_sharing");
	long zmaps = counts[PAGE_ZERO] * nprocs;
	long want = counts[PAGE_SHARED] * (nprocs - 1);

	if (max_sharing < 2)
		max_sharing = 256;
	if (zmaps > 1)
		want += zmaps - (zmaps + max_sharing - 1) / max_sharing;
	return want;
}
