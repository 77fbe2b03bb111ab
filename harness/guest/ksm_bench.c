// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_bench: the workloads of `make bench`, run the same in each kernel.
 *
 *   ksm_bench mix [-n procs] [-m MiB] [-s shared%] [-z zero%] [-p pages]
 *	the limit (a user program hashing all the memory once), S1
 *	convergence, S4 metadata, S2 steady-state rescans, S5 copy-on-write
 *   ksm_bench volatile [-n procs] [-m MiB] [-t seconds]
 *	S3: half the pages rewritten all the time
 *   ksm_bench churn [-i iterations]
 *	short-lived processes that ask for merging: fork, prctl, exit;
 *	time per process and memory left behind, with run=0 and run=1
 *
 * Results are lines "@@BENCH scenario metric value unit"; S1 also prints
 * "@@SAMPLE seconds pages_sharing" for the plot.  All times are guest
 * times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ksm_guest.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define MAX_PROCS 32
#define STEADY_SCANS 6	/* smart scan skips in cycles: time several */

static long page_size, npages;
static int nprocs = 4, shared_pct = 60, zero_pct = 10;
static long mib = 64, pages_to_scan = 5000, seconds = 10;
static long iterations = 5000;

struct worker {
	pid_t pid;
	int cmd, reply;		/* pipe ends of the parent */
};

static struct worker workers[MAX_PROCS];

static enum page_kind kind_of(long i)
{
	return page_kind(i, shared_pct, zero_pct);
}

static void fill(unsigned long long *p, long i, int proc)
{
	page_fill(p, page_size, kind_of(i), i, proc);
}

static void report(const char *scenario, const char *metric, double v,
		   const char *unit)
{
	printf("@@BENCH %s %s %.6g %s\n", scenario, metric, v, unit);
	fflush(stdout);
}

/* Hash every byte of @mem once, as a user-space scanner would. */
static unsigned long long hash_all(const char *mem, long bytes)
{
	const unsigned long long *p = (const void *)mem;
	unsigned long long h = 0;
	long w;

	for (w = 0; w < bytes / 8; w++)
		h = (h ^ p[w]) * 0x100000001b3ULL;
	return h;
}

static void reply(int fd, double v)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%.9f\n", v);

	if (write(fd, buf, n) != n)
		_exit(9);
}

/*
 * A worker of the mix: fills its memory, then obeys the parent's
 * one-letter commands: h (hash it all, reply seconds), w (write once to
 * every shared page, reply seconds), c (check contents, reply pages wrong),
 * q (quit).
 */
static int mix_worker(int proc, int cmd, int out)
{
	long bytes = npages * page_size, i, bad;
	unsigned long long sink;
	char *mem, c;
	double t;

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 2;
	madvise(mem, bytes, MADV_NOHUGEPAGE);
	for (i = 0; i < npages; i++)
		fill((unsigned long long *)(mem + i * page_size), i, proc);
	if (madvise(mem, bytes, MADV_MERGEABLE))
		return 3;
	reply(out, 0);
	while (read(cmd, &c, 1) == 1) {
		switch (c) {
		case 'h':
			t = now();
			sink = hash_all(mem, bytes);
			/* The compiler must not drop the hashing as unused. */
			__asm__ __volatile__("" : : "r" (sink));
			reply(out, now() - t);
			break;
		case 'w':
			t = now();
			for (i = 0; i < npages; i++)
				if (kind_of(i) == PAGE_SHARED)
					mem[i * page_size + 8] ^= 1;
			reply(out, now() - t);
			/* Back as they were, for the final check. */
			for (i = 0; i < npages; i++)
				if (kind_of(i) == PAGE_SHARED)
					mem[i * page_size + 8] ^= 1;
			break;
		case 'c': {
			unsigned long long *want = malloc(page_size);

			bad = 0;
			for (i = 0; i < npages; i++) {
				fill(want, i, proc);
				bad += !!memcmp(mem + i * page_size, want,
						page_size);
			}
			free(want);
			reply(out, bad);
			break;
		}
		default:
			return 0;
		}
	}
	return 0;
}

static double ask(int p, char c)
{
	char buf[64];
	ssize_t n;

	if (write(workers[p].cmd, &c, 1) != 1)
		return -1;
	n = read(workers[p].reply, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atof(buf);
}

/* Ask every worker, one after the other; the sum of their replies. */
static double ask_all(char c)
{
	double sum = 0, v;
	int p;

	for (p = 0; p < nprocs; p++) {
		v = ask(p, c);
		if (v < 0)
			return -1;
		sum += v;
	}
	return sum;
}

static int start_workers(int (*fn)(int, int, int))
{
	int p, cmd[2], out[2];
	char buf[64];

	for (p = 0; p < nprocs; p++) {
		if (pipe(cmd) || pipe(out))
			return -1;
		workers[p].pid = fork();
		if (workers[p].pid < 0)
			return -1;
		if (!workers[p].pid) {
			close(cmd[1]);
			close(out[0]);
			_exit(fn(p, cmd[0], out[1]));
		}
		close(cmd[0]);
		close(out[1]);
		workers[p].cmd = cmd[1];
		workers[p].reply = out[0];
	}
	/* Each says when its memory is ready. */
	for (p = 0; p < nprocs; p++)
		if (read(workers[p].reply, buf, sizeof(buf)) <= 0)
			return -1;
	return 0;
}

static int stop_workers(void)
{
	int p, status, failed = 0;

	for (p = 0; p < nprocs; p++) {
		if (write(workers[p].cmd, "q", 1) != 1)
			failed = 1;
		close(workers[p].cmd);
		close(workers[p].reply);
	}
	for (p = 0; p < nprocs; p++)
		if (waitpid(workers[p].pid, &status, 0) < 0 ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	return failed;
}

/* Wait for the next full scan to end; its guest time, or -1. */
static double next_scan(long limit_s)
{
	long scans = ksm_read("full_scans");
	double t = now();

	while (ksm_read("full_scans") == scans) {
		if (now() - t > limit_s)
			return -1;
		usleep(1000);
	}
	return now();
}

/* S2: ksmd CPU per full scan of memory that no longer changes. */
static void steady(int kpid, int smart)
{
	double cpu0, t0, t1;
	int i;

	ksm_write("smart_scan", smart);
	/* Let a scan with the new setting pass, then time a few. */
	if (next_scan(120) < 0 || next_scan(120) < 0)
		return;
	cpu0 = task_cpu(kpid);
	t0 = now();
	for (i = 0; i < STEADY_SCANS; i++)
		if (next_scan(120) < 0)
			return;
	t1 = now();
	report(smart ? "S2_steady_smart" : "S2_steady_nosmart", "ksmd_cpu_per_scan",
	       (task_cpu(kpid) - cpu0) / STEADY_SCANS, "s");
	report(smart ? "S2_steady_smart" : "S2_steady_nosmart", "time_per_scan",
	       (t1 - t0) / STEADY_SCANS, "s");
}

static int bench_mix(void)
{
	long counts[PAGE_KINDS] = { 0 }, want, sharing = 0;
	long slab0, slab, peak = 0, scanned0, i, tracked;
	double t0, cpu0, limit, t = 0, cow, bad;
	int kpid, failed, late;

	for (i = 0; i < npages; i++)
		counts[kind_of(i)]++;
	want = attainable_sharing(counts, nprocs);

	if (start_workers(mix_worker))
		return 1;
	limit = ask_all('h');
	report("limit", "hash_all_memory_once", limit, "s");

	kpid = ksmd_pid();
	slab0 = meminfo_kb("Slab");
	scanned0 = ksm_read("pages_scanned");
	ksm_write("pages_to_scan", pages_to_scan);
	ksm_write("sleep_millisecs", 0);
	t0 = now();
	cpu0 = task_cpu(kpid);
	ksm_write("run", 1);
	while (sharing < want * 99 / 100 && t < 600) {
		usleep(50000);
		t = now() - t0;
		sharing = ksm_read("pages_sharing");
		slab = meminfo_kb("Slab");
		if (slab > peak)
			peak = slab;
		printf("@@SAMPLE %.3f %ld\n", t, sharing);
	}
	report("S1_convergence", "time_to_99pct", t, "s");
	report("S1_convergence", "ksmd_cpu_to_99pct", task_cpu(kpid) - cpu0, "s");
	report("S1_convergence", "pages_scanned_to_99pct",
	       ksm_read("pages_scanned") - scanned0, "pages");
	report("S1_convergence", "sharing_pct_of_attainable",
	       100.0 * sharing / want, "%");
	report("S1_convergence", "limit_ratio", t / limit, "x");

	/*
	 * Metadata at a scan boundary, the same point of the cycle on both
	 * kernels (where S1 stopped is anywhere in a pass); and the most slab
	 * S1 ever held, for structures that live only within a pass.
	 */
	late = next_scan(120) < 0;
	tracked = ksm_tracked();
	slab = meminfo_kb("Slab");
	report("S4_metadata", "bytes_per_tracked_page",
	       (slab - slab0) * 1024.0 / tracked, "B");
	report("S4_metadata", "peak_bytes_per_tracked_page",
	       ((slab > peak ? slab : peak) - slab0) * 1024.0 / tracked, "B");
	report("S4_metadata", "general_profit",
	       ksm_read("general_profit") / 1048576.0, "MiB");

	steady(kpid, 1);
	steady(kpid, 0);
	ksm_write("smart_scan", 1);

	cow = ask_all('w');
	report("S5_cow", "write_every_merged_page", cow, "s");
	report("S5_cow", "per_page", cow / (counts[PAGE_SHARED] * nprocs) * 1e6,
	       "us");

	bad = ask_all('c');
	failed = stop_workers() || bad || late;
	report("check", "pages_wrong", bad, "pages");
	ksm_write("run", 2);
	return failed;
}

/*
 * S3: half of the pages rewritten every millisecond, all to one of 4
 * values, drawn anew each round: a scanner that sees a page twice sees
 * the same value one time in four, and is tempted to merge it.  A cycle
 * of the 4 values would resonate with the scan period instead, and make
 * the count swing by 4x from one run to the next.
 */
static int volatile_worker(int proc, int cmd, int out)
{
	long bytes = npages * page_size, i, it;
	char *mem, c;

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 2;
	madvise(mem, bytes, MADV_NOHUGEPAGE);
	memset(mem, 7, bytes);
	if (madvise(mem, bytes, MADV_MERGEABLE))
		return 3;
	reply(out, 0);
	/* Until told to stop: a read that does not block once data is there. */
	for (it = 0;; it++) {
		struct timespec ts = { 0, 1000000 };
		char value = mix((unsigned long long)proc << 32 | it) % 4;

		for (i = npages / 2; i < npages; i++)
			mem[i * page_size] = value;
		nanosleep(&ts, NULL);
		if (it % 64 == 0) {
			fd_set fds;
			struct timeval tv = { 0, 0 };

			FD_ZERO(&fds);
			FD_SET(cmd, &fds);
			if (select(cmd + 1, &fds, NULL, NULL, &tv) > 0 &&
			    read(cmd, &c, 1) >= 0)
				return 0;
		}
	}
}

static long read_vmstat(const char *name)
{
	char key[64];
	long v, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	while (f && fscanf(f, "%63s %ld", key, &v) == 2)
		if (!strcmp(key, name))
			found = v;
	if (f)
		fclose(f);
	return found;
}

static int bench_volatile(void)
{
	long cow0, scans0;
	double cpu0;
	int kpid = ksmd_pid();

	if (start_workers(volatile_worker))
		return 1;
	ksm_write("pages_to_scan", pages_to_scan);
	ksm_write("sleep_millisecs", 0);
	cow0 = read_vmstat("cow_ksm");
	scans0 = ksm_read("full_scans");
	cpu0 = task_cpu(kpid);
	ksm_write("run", 1);
	sleep(seconds);
	report("S3_volatile", "merges_broken_by_cow", read_vmstat("cow_ksm") - cow0,
	       "pages");
	report("S3_volatile", "ksmd_cpu", task_cpu(kpid) - cpu0, "s");
	report("S3_volatile", "full_scans", ksm_read("full_scans") - scans0,
	       "scans");
	report("S3_volatile", "pages_sharing_at_end", ksm_read("pages_sharing"),
	       "pages");
	ksm_write("run", 2);
	return stop_workers();
}

/* Fold the per-CPU counters into /proc/meminfo first: exact figures. */
static long meminfo_exact_kb(const char *name)
{
	FILE *f = fopen("/proc/sys/vm/stat_refresh", "w");

	if (f) {
		fputs("1", f);
		fclose(f);
	}
	return meminfo_kb(name);
}

#define CHURN_PAGES 4

/*
 * One short-lived process that asks for merging: fork, PR_SET_MEMORY_MERGE,
 * a few pages written, exit; the parent waits.  0 or -1.
 */
static int churn_once(char *pages)
{
	int status, i;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			_exit(1);
		for (i = 0; i < CHURN_PAGES; i++)
			pages[i * page_size] = 1;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		return -1;
	return 0;
}

/*
 * Churn with ksmd stopped (run=0, as after boot) and running (run=1, the
 * boot pace): guest time per fork+exit, and what the exits left behind,
 * in MemAvailable and in slab, per exit: at once, and a second later for
 * what ksmd frees lazily.
 */
static int bench_churn(void)
{
	static const char * const scenario[] = { "churn_run0", "churn_run1" };
	long avail0, slab0, avail, slab, i;
	int run, failed = 0;
	double t0, t;
	char *pages;

	/* Untouched in the parent: each child faults in fresh pages. */
	pages = mmap(NULL, CHURN_PAGES * page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pages == MAP_FAILED)
		return 1;
	for (run = 0; run <= 1; run++) {
		ksm_write("run", run);
		/* Warm the slab caches and per-CPU lists first. */
		for (i = 0; i < iterations / 10; i++)
			failed |= churn_once(pages);
		avail0 = meminfo_exact_kb("MemAvailable");
		slab0 = meminfo_exact_kb("Slab");
		t0 = now();
		for (i = 0; i < iterations; i++)
			failed |= churn_once(pages);
		t = now() - t0;
		avail = meminfo_exact_kb("MemAvailable");
		slab = meminfo_exact_kb("Slab");
		report(scenario[run], "per_fork_exit", t / iterations * 1e6, "us");
		report(scenario[run], "mem_left_per_exit",
		       (avail0 - avail) * 1024.0 / iterations, "B");
		report(scenario[run], "slab_left_per_exit",
		       (slab - slab0) * 1024.0 / iterations, "B");
		/* Measured, not waited on: no condition says ksmd is done. */
		usleep(1000000);
		avail = meminfo_exact_kb("MemAvailable");
		report(scenario[run], "mem_left_per_exit_1s",
		       (avail0 - avail) * 1024.0 / iterations, "B");
	}
	ksm_write("run", 2);
	return failed ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "ksm_bench mix|volatile|churn [-n procs] [-m MiB] [-s shared%%]\n"
		"          [-z zero%%] [-p pages_to_scan] [-t seconds] [-i iterations]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *what;
	int opt;

	if (argc < 2)
		usage();
	what = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "n:m:s:z:p:t:i:")) != -1) {
		switch (opt) {
		case 'n':
			nprocs = atoi(optarg);
			break;
		case 'm':
			mib = atol(optarg);
			break;
		case 's':
			shared_pct = atoi(optarg);
			break;
		case 'z':
			zero_pct = atoi(optarg);
			break;
		case 'p':
			pages_to_scan = atol(optarg);
			break;
		case 't':
			seconds = atol(optarg);
			break;
		case 'i':
			iterations = atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (nprocs < 2 || nprocs > MAX_PROCS || mib < 1 || iterations < 10)
		usage();
	page_size = sysconf(_SC_PAGESIZE);
	npages = mib * 1024 * 1024 / page_size;
	/* Start from nothing merged. */
	if (ksm_write("run", 2)) {
		fprintf(stderr, "ksm_bench: no KSM: %s\n", strerror(errno));
		return 1;
	}
	if (!strcmp(what, "mix"))
		return bench_mix();
	if (!strcmp(what, "volatile"))
		return bench_volatile();
	if (!strcmp(what, "churn"))
		return bench_churn();
	usage();
	return 2;
}
