// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_demo: the main job of `make run`.
 *
 * Starts several processes that hold memory with VM-like duplication
 * (pages shared across processes, zero pages, unique pages), turns KSM on
 * through sysfs, prints a progress line every second until sharing
 * converges, then a summary.  Before exiting every worker checks that each
 * of its pages still holds exactly what it wrote.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "ksm_guest.h"

#define MAX_PROCS 64

static long page_size;
static int nprocs = 4;
static long mib = 256;
static int shared_pct = 70, zero_pct = 10;
static long pages_to_scan = 5000, sleep_ms;
static long timeout_s = 600;

static void fill(unsigned long long *p, long i, int proc)
{
	page_fill(p, page_size, page_kind(i, shared_pct, zero_pct), i, proc);
}

static int check(unsigned long long *p, long i, int proc)
{
	static unsigned long long *want;

	if (!want)
		want = malloc(page_size);
	fill(want, i, proc);
	return memcmp(p, want, page_size) == 0;
}

/* on_term() escapes through signal(): every call below rereads this. */
static sig_atomic_t stop;
static sigset_t waitmask;	/* SIGTERM unblocked only while waiting */

static void on_term(int sig)
{
	stop = 1;
}

static int worker(int proc, int ready_fd)
{
	long npages = mib * 1024 * 1024 / page_size, i, bad = 0;
	char *mem;

	mem = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 2;
	/* Small pages only: the demo is about KSM, not about THP splitting. */
	madvise(mem, npages * page_size, MADV_NOHUGEPAGE);
	for (i = 0; i < npages; i++)
		fill((unsigned long long *)(mem + i * page_size), i, proc);
	if (madvise(mem, npages * page_size, MADV_MERGEABLE))
		return 3;
	if (write(ready_fd, "r", 1) != 1)
		return 4;
	while (!stop)
		sigsuspend(&waitmask);
	for (i = 0; i < npages; i++)
		bad += !check((unsigned long long *)(mem + i * page_size), i, proc);
	if (bad)
		fprintf(stderr, "ksm_demo: process %d: %ld pages changed content\n",
			proc, bad);
	return bad ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"ksm_demo [-n procs] [-m MiB each] [-s shared%%] [-z zero%%]\n"
		"          [-p pages_to_scan] [-t sleep_millisecs] [-T timeout s]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long npages, i, counts[PAGE_KINDS] = { 0 }, want;
	double t0, cpu0, cpu, t;
	pid_t pids[MAX_PROCS];
	sigset_t term;
	int opt, p, fds[2], kpid, status, failed = 0, intact = 1;
	long sharing = 0, last = -1, stable = 0, slab0, tracked;
	char c;

	while ((opt = getopt(argc, argv, "n:m:s:z:p:t:T:")) != -1) {
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
			sleep_ms = atol(optarg);
			break;
		case 'T':
			timeout_s = atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (nprocs < 2 || nprocs > MAX_PROCS || mib < 1 ||
	    shared_pct < 0 || zero_pct < 0 || shared_pct + zero_pct > 100)
		usage();
	page_size = sysconf(_SC_PAGESIZE);
	npages = mib * 1024 * 1024 / page_size;
	for (i = 0; i < npages; i++)
		counts[page_kind(i, shared_pct, zero_pct)]++;

	/*
	 * What full merging gives: each shared page keeps one copy for all
	 * processes; all zero pages share one content, but a KSM page takes
	 * at most max_page_sharing mappings, so that content needs
	 * ceil(mappings / max_page_sharing) KSM pages.
	 */
	want = attainable_sharing(counts, nprocs);

	printf("ksm_demo: %d processes x %ld MiB: %ld shared, %ld zero, %ld unique pages each\n",
	       nprocs, mib, counts[PAGE_SHARED], counts[PAGE_ZERO],
	       counts[PAGE_UNIQUE]);
	printf("ksm_demo: attainable pages_sharing %ld (%.0f MiB of %ld MiB)\n",
	       want, want * (double)page_size / (1 << 20), mib * nprocs);
	fflush(stdout);

	signal(SIGTERM, on_term);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	if (pipe(fds))
		return 1;
	for (p = 0; p < nprocs; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			close(fds[0]);
			_exit(worker(p, fds[1]));
		}
	}
	close(fds[1]);
	for (p = 0; p < nprocs; p++) {
		if (read(fds[0], &c, 1) != 1) {
			fprintf(stderr, "ksm_demo: a worker failed to start\n");
			failed = 1;
			goto out;
		}
	}

	kpid = ksmd_pid();
	slab0 = meminfo_kb("Slab");
	if (ksm_write("pages_to_scan", pages_to_scan) ||
	    ksm_write("sleep_millisecs", sleep_ms) || ksm_write("run", 1)) {
		fprintf(stderr, "ksm_demo: cannot start KSM: %s\n", strerror(errno));
		failed = 1;
		goto out;
	}
	printf("ksm_demo: run=1 pages_to_scan=%ld sleep_millisecs=%ld\n",
	       pages_to_scan, sleep_ms);
	t0 = now();
	cpu0 = task_cpu(kpid);
	for (;;) {
		usleep(1000000 - (long)((now() - t0) * 1e6) % 1000000);
		t = now() - t0;
		sharing = ksm_read("pages_sharing");
		cpu = task_cpu(kpid) - cpu0;
		printf("%6.1fs  shared %7ld  sharing %7ld  saved %7.1f MiB  ",
		       t, ksm_read("pages_shared"), sharing,
		       sharing * (double)page_size / (1 << 20));
		printf("full_scans %4ld  ksmd cpu %6.2fs\n",
		       ksm_read("full_scans"), cpu);
		fflush(stdout);
		stable = sharing == last ? stable + 1 : 0;
		last = sharing;
		if (sharing >= want || stable >= 10 || t > timeout_s)
			break;
	}
	printf("ksm_demo: %s after %.1f s of guest time, ksmd cpu %.2f s\n",
	       sharing >= want ? "converged" : "stopped short", t, cpu);
	printf("ksm_demo: saved %.1f MiB of %ld MiB (%.1f%% of attainable), ",
	       sharing * (double)page_size / (1 << 20), mib * nprocs,
	       want ? 100.0 * sharing / want : 100.0);
	printf("general_profit %.1f MiB\n",
	       ksm_read("general_profit") / (double)(1 << 20));
	/* KSM's metadata is slab memory: what it grew by, per tracked page. */
	tracked = ksm_tracked();
	if (slab0 >= 0 && tracked > 0) {
		printf("ksm_demo: metadata %.1f bytes per tracked page ",
		       (meminfo_kb("Slab") - slab0) * 1024.0 / tracked);
		printf("(slab +%ld kB, %ld pages tracked)\n",
		       meminfo_kb("Slab") - slab0, tracked);
	}
	if (sharing < want)
		failed = 1;
out:
	for (p = 0; p < nprocs; p++)
		kill(pids[p], SIGTERM);
	for (p = 0; p < nprocs; p++) {
		if (waitpid(pids[p], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			intact = 0;
	}
	printf("ksm_demo: page contents %s\n",
	       intact ? "verified intact in every process" : "NOT intact (see above)");
	return failed || !intact;
}
