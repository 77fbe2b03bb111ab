// SPDX-License-Identifier: GPL-2.0
/*
 * A mixed workload, as users run KSM: processes that madvise() part of
 * their memory, processes that ask for merging with prctl() before they
 * map it (on mmap()ed or brk() memory) or once ksmd has run, one that
 * starts while ksmd runs, forks that keep running and write (one before
 * anything merged, whose child shifts its pages down by one, as
 * memmove() would), a child that execs, regions moved and grown by
 * mremap(), all holding pages of a few shared contents and unique ones,
 * some of them on THPs.  While ksmd runs flat out, the processes keep
 * changing things for a while: short-lived children forked or execed,
 * regions moved back and forth, grown and shrunk, pages written over and
 * back.  Every process's /proc/<pid>/ksm_merging_pages and ksm_stat are
 * sampled all along with the global counters.  Once the workload is
 * quiet and ksmd had full scans enough, ksmd is frozen (run=0) and:
 * - the processes' ksm_merging_pages add up to pages_shared +
 *   pages_sharing (nothing else in the guest merges);
 * - every process that holds pages equal to another's counts them all:
 *   exactly the pages it holds whose contents another page holds, where
 *   it merges, and the KSM lines of its smaps confirm it, VMA by VMA;
 *   every short-lived child sampled over full scans enough counted some;
 * - every page holds what its process wrote last.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define PAGES		2048	/* a worker's region, before it grows */
#define SHARED		5	/* contents held by every process */
#define THP_PAGES	512	/* pages in a THP (x86-64) */
#define BUSY_SHARING	1000	/* pages_sharing that a sample counts as busy */
#define READY_S		60	/* bounds of the waits, guest seconds */
#define MERGE_SCANS	200	/* full scans the first merge may take */
#define MERGE_S		30
#define SETTLE_SCANS	300	/* full scans the workload may take to settle */
#define SETTLE_S	45
#define LAST_S		20	/* for the last two full scans */
#define SAMPLE_US	50000	/* between two samples */
#define CHURN_S		15	/* forks, execs, moves and writes while ksmd runs */
#define STEP_US		100000	/* between two churning steps */
#define SHORT_S		1.5	/* the life of a short-lived child */
#define SHORT_SCANS	8	/* full scans it must count something after */

/* Page i of process w holds a shared content, or one of its own. */
#define UNIQUE(w, i)	(1000 + (w) * 100000 + (i))
#define REWRITTEN(s)	((s) + 50000)	/* a unique page written anew */

enum kind {
	MADV,		/* madvise()s 3/4 of its region */
	MADV_FORK,	/* madvise()s, forks once merged, and writes */
	MADV_EARLY,	/* madvise()s and forks before ksmd runs */
	PRCTL_EXEC,	/* prctl() before mapping; its child execs */
	PRCTL_LATE,	/* maps and fills, prctl() once ksmd ran */
	PRCTL_FORK,	/* prctl() before mapping, forks once merged */
	PRCTL_GROW,	/* prctl() before mapping, grows its region in place */
	MREMAP_MOVE,	/* madvise()s, moves its region once merged */
	MREMAP_GROW,	/* madvise()s, grows its region, which must move */
	PRCTL_HEAP,	/* prctl() first, its region on the brk heap */
	MADV_LATE,	/* starts while ksmd runs: madvise()s, then fills */
	MADV_SHIFT,	/* unique pages; its child shifts them down a page */
	CHILD,		/* forked by one of the above; writes some pages */
	EXECED,		/* a child of PRCTL_EXEC, after execve() */
};

static const char *const kind_name[] = {
	"madv", "madv_fork", "madv_early", "prctl_exec", "prctl_late",
	"prctl_fork", "prctl_grow", "mremap_move", "mremap_grow",
	"prctl_heap", "madv_late", "madv_shift", "child", "execed",
};

/* The phases the controller (the test) leads the processes through. */
enum phase { PH_SETUP, PH_ACT, PH_CHURN, PH_QUIET, PH_VERIFY, PH_EXIT };

/* What a process has done. */
enum stage { ST_NONE, ST_READY, ST_ACTED, ST_QUIET, ST_VERIFIED };

#define MAX_PROCS	20

/* One process of the workload, in memory it shares with the controller. */
struct wproc {
	enum kind kind;
	int parent;		/* table index of the forking process, or -1 */
	int child;		/* table index of its child, or -1 */
	pid_t pid;
	int stage;
	bool early;		/* a child forked at setup */
	bool exact;		/* nothing of it merges outside its region */
	bool thp;		/* its region starts out on THPs */
	bool late;		/* started while the others churn */
	unsigned long region;	/* where its region is now */
	long pages;		/* and how long */
	long expect;		/* its pages of shared contents where it merges */
	long bad;		/* pages found holding the wrong data */
	pid_t tpid;		/* a short-lived child of it, while there */
	int ops;		/* what it did while churning */
	int err;		/* errno of a churning step that failed */
	char note[96];		/* what it did */
};

struct state {
	int phase;
	int nprocs;
	struct wproc p[MAX_PROCS];
};

/* A process's own view of its memory. */
struct wmem {
	char *r;		/* region */
	long n;			/* pages in it */
	long adv;		/* pages from r that are mergeable */
	unsigned int *seeds;	/* what page i holds: fill_page() seed */
	char *home;		/* MREMAP_MOVE: where the region was mapped */
	char *dst;		/* and where it goes */
	bool shift;		/* MADV_SHIFT's pages, or its child's */
	long flip;		/* a page written over for a while, or -1 */
};

static int get_phase(struct state *st)
{
	return __atomic_load_n(&st->phase, __ATOMIC_ACQUIRE);
}

static void set_phase(struct state *st, int phase)
{
	__atomic_store_n(&st->phase, phase, __ATOMIC_RELEASE);
}

static void set_stage(struct wproc *p, int stage)
{
	__atomic_store_n(&p->stage, stage, __ATOMIC_RELEASE);
}

static int get_stage(struct wproc *p)
{
	return __atomic_load_n(&p->stage, __ATOMIC_ACQUIRE);
}

/* Wait for the controller; a process left alone that long gives up. */
static void wait_phase(struct state *st, int phase)
{
	if (!WAIT_UNTIL(get_phase(st) >= phase, 600))
		_exit(3);
}

static bool merges_by_prctl(enum kind k)
{
	return k == PRCTL_EXEC || k == PRCTL_LATE || k == PRCTL_FORK ||
	       k == PRCTL_GROW || k == PRCTL_HEAP || k == EXECED;
}

/* The layout every process starts from: 3 pages in 4 of shared contents. */
static unsigned int layout(int w, long i)
{
	return i % 4 == 3 ? UNIQUE(w, i) : i % SHARED;
}

static void write_page(struct wmem *m, long i, unsigned int seed)
{
	m->seeds[i] = seed;
	fill_page(m->r + i * page_size(), seed);
}

static void fill_region(struct wmem *m, int w, long from, long to)
{
	long i;

	for (i = from; i < to; i++)
		write_page(m, i, layout(w, i));
}

/* Pages of shared contents where the process merges: what it must count. */
static void account(struct wproc *p, struct wmem *m)
{
	long i, n = 0;

	for (i = 0; i < m->adv; i++)
		n += m->seeds[i] < SHARED;
	/*
	 * MADV_SHIFT's pages are all unique but for its child's copies: the
	 * child's even page i holds what page i + 1 holds, which parent and
	 * child still share.  The child counts all its pages, the parent
	 * its odd ones.
	 */
	if (m->shift)
		n = p->kind == CHILD ? m->n : m->n / 2;
	p->expect = n;
	p->region = (unsigned long)m->r;
	p->pages = m->n;
}

static long verify(struct wmem *m)
{
	long i, bad = 0;

	for (i = 0; i < m->n; i++)
		bad += !page_holds(m->r + i * page_size(), m->seeds[i]);
	return bad;
}

static void *map_pages(long pages, int prot)
{
	void *p = mmap(NULL, pages * page_size(), prot,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void churn(struct state *st, int me, struct wmem *m, int fd);

/* The rest of a process's life, once it has set itself up and acted. */
static void live_on(struct state *st, int me, struct wmem *m, int fd)
{
	struct wproc *p = &st->p[me];
	int status;

	churn(st, me, m, fd);
	account(p, m);
	set_stage(p, ST_QUIET);
	wait_phase(st, PH_VERIFY);
	p->bad += verify(m);
	set_stage(p, ST_VERIFIED);
	wait_phase(st, PH_EXIT);
	if (p->child >= 0 && st->p[p->child].pid > 0)
		waitpid(st->p[p->child].pid, &status, 0);
	_exit(0);
}

/* A forked child: writes some pages (now, or in PH_ACT if forked early). */
static void child_life(struct state *st, int me, struct wmem *m)
{
	struct wproc *p = &st->p[me];
	long i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p->pid = getpid();
	if (m->shift) {
		/*
		 * Page i gets what page i + 1 holds, as memmove() one page
		 * down would: a private page equal to one still shared with
		 * the parent, a little further on.
		 */
		for (i = 0; i + 1 < m->n; i += 2)
			write_page(m, i, m->seeds[i + 1]);
		account(p, m);
		snprintf(p->note, sizeof(p->note),
			 "child of %s, shifted its pages down",
			 kind_name[st->p[p->parent].kind]);
		set_stage(p, ST_READY);
		wait_phase(st, PH_ACT);
		set_stage(p, ST_ACTED);
		live_on(st, me, m, -1);
	}
	if (p->early) {
		account(p, m);
		set_stage(p, ST_READY);
		wait_phase(st, PH_ACT);
	}
	for (i = 0; i < m->n; i++) {
		if (i % 8 == 0)
			write_page(m, i, UNIQUE(me, i));
		else if (i % 8 == 6)
			write_page(m, i, (m->seeds[i] + 1) % SHARED);
	}
	account(p, m);
	snprintf(p->note, sizeof(p->note), "child of %s, wrote 1/4 of its pages",
		 kind_name[st->p[p->parent].kind]);
	set_stage(p, ST_ACTED);
	live_on(st, me, m, -1);
}

static pid_t fork_child(struct state *st, int me, struct wmem *m)
{
	int c = st->p[me].child;
	pid_t pid = fork();

	if (!pid)
		child_life(st, c, m);
	if (pid > 0)
		st->p[c].pid = pid;
	return pid;
}

/* The child of PRCTL_EXEC runs this very program again. */
static pid_t fork_exec(struct state *st, int me, int fd)
{
	int c = st->p[me].child;
	char fds[16], idx[16];
	pid_t pid = fork();

	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		snprintf(fds, sizeof(fds), "%d", fd);
		snprintf(idx, sizeof(idx), "%d", c);
		execl("/proc/self/exe", "ksm_mixed_test", "--exec-worker", fds,
		      idx, (char *)NULL);
		_exit(4);
	}
	if (pid > 0)
		st->p[c].pid = pid;
	return pid;
}

/*
 * @pages pages, THP-aligned and backed by THPs if @thp, with @room pages
 * free after them; NULL on failure.
 */
static char *map_region(long pages, long room, bool thp)
{
	long align = thp ? THP_PAGES : 1, total = pages + room + align;
	unsigned long a, end;
	char *p, *r;

	p = map_pages(total, PROT_READ | PROT_WRITE);
	if (!p)
		return NULL;
	a = (unsigned long)p + align * page_size() - 1;
	r = (char *)(a - a % (align * page_size()));
	end = (unsigned long)p + total * page_size();
	if ((r > p && munmap(p, r - p)) ||
	    munmap(r + pages * page_size(),
		   end - (unsigned long)r - pages * page_size()))
		return NULL;
	madvise(r, pages * page_size(), thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return r;
}

/* @pages pages at the end of the brk heap, brk() growing it bit by bit. */
static char *heap_region(long pages)
{
	unsigned long brk0 = (unsigned long)sbrk(0), pad;
	char *r;
	long i;

	pad = (page_size() - brk0 % page_size()) % page_size();
	if (sbrk(pad) == (void *)-1)
		return NULL;
	r = sbrk(0);
	for (i = 0; i < pages; i += 64)
		if (sbrk(64 * page_size()) == (void *)-1)
			return NULL;
	return r;
}

static int setup_region(struct wproc *p, int me, struct wmem *m)
{
	long cap = PAGES * 3 / 2, i;
	char *r = NULL;

	m->n = PAGES;
	/* PRCTL_LATE merges nothing before its prctl(). */
	m->adv = p->kind == MADV ? PAGES * 3 / 4 :
		 p->kind == PRCTL_LATE ? 0 : PAGES;
	m->seeds = map_pages(cap * sizeof(*m->seeds) / page_size() + 1,
			     PROT_READ | PROT_WRITE);
	if (!m->seeds)
		return -1;
	switch (p->kind) {
	case MREMAP_GROW:
		/* A guard page after it: growing must move the region. */
		r = map_region(PAGES, 0, p->thp);
		if (r && mmap(r + PAGES * page_size(), page_size(), PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			      -1, 0) == MAP_FAILED)
			r = NULL;
		break;
	case PRCTL_GROW:
		/* Room after it, to grow in place. */
		r = map_region(PAGES, cap - PAGES, p->thp);
		break;
	case PRCTL_HEAP:
		r = heap_region(PAGES);
		break;
	case MREMAP_MOVE:
		/* Where it will go: an address no other mapping takes. */
		m->dst = map_pages(PAGES, PROT_NONE);
		if (m->dst)
			r = map_region(PAGES, 0, p->thp);
		m->home = r;
		break;
	default:
		r = map_region(PAGES, 0, p->thp);
		break;
	}
	if (!r)
		return -1;
	m->r = r;
	m->flip = -1;
	if (p->kind == MADV_LATE) {
		/* Mergeable first, then filled while ksmd looks at it. */
		if (madvise(r, m->adv * page_size(), MADV_MERGEABLE))
			return -1;
		for (i = 0; i < PAGES; i += 64) {
			fill_region(m, me, i, i + 64);
			usleep(10000);
		}
		return 0;
	}
	m->shift = p->kind == MADV_SHIFT;
	for (i = 0; i < PAGES; i++)
		write_page(m, i, m->shift ? UNIQUE(me, i) : layout(me, i));
	if (!merges_by_prctl(p->kind) &&
	    madvise(r, m->adv * page_size(), MADV_MERGEABLE))
		return -1;
	return 0;
}

/* Grow the region by half, in place if @in_place and it can, and fill it. */
static int grow(struct wmem *m, int me, bool in_place)
{
	long n = PAGES * 3 / 2;
	char *r = MAP_FAILED;

	if (in_place)
		r = mremap(m->r, m->n * page_size(), n * page_size(), 0);
	if (r == MAP_FAILED)
		r = mremap(m->r, m->n * page_size(), n * page_size(),
			   MREMAP_MAYMOVE);
	if (r == MAP_FAILED)
		return -1;
	m->r = r;
	m->n = n;
	m->adv = n;
	fill_region(m, me, PAGES, n);
	return 0;
}

/* Back to PAGES pages: the rest is unmapped. */
static int shrink(struct wmem *m)
{
	if (mremap(m->r, m->n * page_size(), PAGES * page_size(), 0) != m->r)
		return -1;
	m->n = PAGES;
	m->adv = PAGES;
	if (m->flip >= PAGES)
		m->flip = -1;
	return 0;
}

/* MREMAP_MOVE: from home to dst or back; where it was stays reserved. */
static int move(struct wmem *m)
{
	char *to = m->r == m->home ? m->dst : m->home;
	char *from = m->r;
	size_t len = m->n * page_size();

	if (mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
		return -1;
	m->r = to;
	if (mmap(from, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_FIXED_NOREPLACE, -1, 0) != from)
		return -1;
	return 0;
}

/*
 * Write a page of shared contents over with another for a while, then
 * back: merges break, and come back.  Return true if a page was written.
 */
static bool flip(struct wmem *m, unsigned int round)
{
	long i;

	if (m->flip >= 0) {
		write_page(m, m->flip, (m->seeds[m->flip] + SHARED - 1) % SHARED);
		m->flip = -1;
		return true;
	}
	i = (round * 37) % m->n;
	if (m->seeds[i] >= SHARED)
		return false;
	write_page(m, i, (m->seeds[i] + 1) % SHARED);
	m->flip = i;
	return true;
}

/* What each process does once ksmd has merged what it holds. */
static int act(struct state *st, int me, struct wmem *m, int fd)
{
	struct wproc *p = &st->p[me];
	long i;
	char *r;

	switch (p->kind) {
	case MADV_FORK:
		if (fork_child(st, me, m) < 0)
			return -1;
		for (i = 1; i < m->n; i += 16)
			write_page(m, i, REWRITTEN(UNIQUE(me, i)));
		snprintf(p->note, sizeof(p->note),
			 "forked, then wrote 1/16 of its pages");
		break;
	case PRCTL_FORK:
		if (fork_child(st, me, m) < 0)
			return -1;
		snprintf(p->note, sizeof(p->note), "forked");
		break;
	case PRCTL_EXEC:
		if (fork_exec(st, me, fd) < 0)
			return -1;
		snprintf(p->note, sizeof(p->note), "forked a child that execs");
		break;
	case PRCTL_LATE:
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			return -1;
		m->adv = m->n;
		snprintf(p->note, sizeof(p->note), "prctl() after ksmd ran");
		break;
	case MREMAP_MOVE:
		if (move(m))
			return -1;
		snprintf(p->note, sizeof(p->note), "moved by %+ld pages",
			 (long)(m->dst - m->home) / page_size());
		break;
	case MREMAP_GROW:
	case PRCTL_GROW:
		r = m->r;
		if (grow(m, me, p->kind == PRCTL_GROW))
			return -1;
		snprintf(p->note, sizeof(p->note), "grew to %ld pages, %s",
			 m->n, r == m->r ? "in place" : "moved");
		break;
	default:
		break;
	}
	return 0;
}

/* A short-lived child: writes some pages, lives SHORT_S, checks them. */
static void short_life(struct state *st, struct wmem *m, unsigned int round)
{
	double end = now() + SHORT_S;
	long i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (i = 0; i < m->n; i += 8)
		write_page(m, i, UNIQUE(MAX_PROCS + round % 64, i));
	while (now() < end && get_phase(st) < PH_QUIET)
		usleep(10000);
	_exit(verify(m) ? 1 : 0);
}

/* A short-lived child of PRCTL_EXEC, after execve(): as exec_worker(). */
static int exec_short(int fd, int me)
{
	struct state *st;
	struct wmem m = { };
	double end = now() + SHORT_S;
	struct wproc p = { .kind = EXECED };

	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (st == MAP_FAILED)
		return 9;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setup_region(&p, me, &m))
		return 10;
	while (now() < end && get_phase(st) < PH_QUIET)
		usleep(10000);
	return verify(&m) ? 1 : 0;
}

/* Fork a short-lived child, or exec one; reap the last. */
static void churn_child(struct state *st, int me, struct wmem *m, int fd,
			unsigned int round, bool wait)
{
	struct wproc *p = &st->p[me];
	char fds[16], idx[16];
	int status;
	pid_t pid;

	if (p->tpid > 0) {
		if (waitpid(p->tpid, &status, wait ? 0 : WNOHANG) != p->tpid)
			return;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			p->bad++;
		p->tpid = 0;
		return;
	}
	if (wait)
		return;
	pid = fork();
	if (!pid && p->kind != PRCTL_EXEC)
		short_life(st, m, round);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		snprintf(fds, sizeof(fds), "%d", fd);
		snprintf(idx, sizeof(idx), "%d", MAX_PROCS + round % 64);
		execl("/proc/self/exe", "ksm_mixed_test", "--exec-short", fds,
		      idx, (char *)NULL);
		_exit(4);
	}
	if (pid > 0) {
		p->tpid = pid;
		p->ops++;
	}
}

/*
 * While the controller says so, keep changing things under ksmd: forks
 * and execs of short-lived children, moves, growing and shrinking,
 * writes that break merges and undo themselves.
 */
static void churn(struct state *st, int me, struct wmem *m, int fd)
{
	struct wproc *p = &st->p[me];
	unsigned int round = me;
	int err = 0;

	wait_phase(st, PH_CHURN);
	while (get_phase(st) < PH_QUIET && !err) {
		round++;
		switch (p->kind) {
		case MADV_FORK:
		case PRCTL_FORK:
		case PRCTL_EXEC:
			churn_child(st, me, m, fd, round, false);
			break;
		case MREMAP_MOVE:
			if (round % 3 == 0) {
				err = move(m);
				p->ops++;
			}
			break;
		case MREMAP_GROW:
		case PRCTL_GROW:
			if (round % 4 == 0) {
				err = m->n > PAGES ? shrink(m) :
				      grow(m, me, p->kind == PRCTL_GROW);
				p->ops++;
			}
			break;
		case MADV:
		case PRCTL_LATE:
			break;
		default:
			p->ops += flip(m, round);
			break;
		}
		usleep(STEP_US);
	}
	if (err)
		p->err = errno;
	churn_child(st, me, m, fd, round, true);
	/* Quiet: the region as it was after act(). */
	if (m->flip >= 0)
		flip(m, round);
	if ((p->kind == MREMAP_GROW || p->kind == PRCTL_GROW) && m->n == PAGES &&
	    grow(m, me, p->kind == PRCTL_GROW))
		p->err = errno;
}

static void worker(struct state *st, int me, int fd)
{
	struct wproc *p = &st->p[me];
	struct wmem m = { };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p->pid = getpid();
	if (merges_by_prctl(p->kind) && p->kind != PRCTL_LATE &&
	    prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		_exit(5);
	if (setup_region(p, me, &m))
		_exit(6);
	if ((p->kind == MADV_EARLY || p->kind == MADV_SHIFT) &&
	    fork_child(st, me, &m) < 0)
		_exit(7);
	account(p, &m);
	snprintf(p->note, sizeof(p->note), "%s",
		 p->kind == MADV_EARLY || p->kind == MADV_SHIFT ?
		 "forked before ksmd ran" : "");
	set_stage(p, ST_READY);

	wait_phase(st, PH_ACT);
	if (act(st, me, &m, fd))
		_exit(8);
	account(p, &m);
	set_stage(p, ST_ACTED);
	live_on(st, me, &m, fd);
}

/* The child of PRCTL_EXEC, after execve(): maps and fills its own region. */
static int exec_worker(int fd, int me)
{
	struct state *st;
	struct wproc *p;
	struct wmem m = { };
	int merge_any;

	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (st == MAP_FAILED)
		return 9;
	p = &st->p[me];
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* PR_SET_MEMORY_MERGE outlives execve(). */
	merge_any = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (setup_region(p, me, &m))
		return 10;
	account(p, &m);
	snprintf(p->note, sizeof(p->note), "execve()d, merge-any %d",
		 merge_any);
	set_stage(p, ST_ACTED);
	live_on(st, me, &m, fd);
	return 0;
}

/* --- the controller ------------------------------------------------------ */

/* What the samples saw of one process, and of its short-lived children. */
struct seen {
	long samples;
	long zero_busy;		/* reads of 0 while pages_sharing was high */
	long busy;		/* samples while pages_sharing was high */
	long max;
	pid_t tpid;		/* the short-lived child being sampled */
	long t_from, t_to;	/* full_scans at its first and last sample */
	long t_max;		/* its largest ksm_merging_pages */
	long t_samples;
	long shorts;		/* short-lived children sampled long enough */
	long short_zero;	/* ... and never seen counting anything */
};

struct ctl {
	struct state *st;
	struct seen seen[MAX_PROCS];
	double start, last_print;
};

/* The short-lived child sampled last is gone: did it count something? */
static void short_done(struct seen *s, int i)
{
	if (s->tpid <= 0 || s->t_to - s->t_from < SHORT_SCANS)
		return;
	s->shorts++;
	if (s->t_max)
		return;
	s->short_zero++;
	printf("# %d: short-lived child %d read 0 in %ld samples over %ld full scans\n",
	       i, s->tpid, s->t_samples, s->t_to - s->t_from);
}

static void sample_short(struct seen *s, int i, pid_t tpid, long scans)
{
	long v;

	if (tpid != s->tpid) {
		short_done(s, i);
		s->tpid = tpid;
		s->t_from = scans;
		s->t_to = scans;
		s->t_max = 0;
		s->t_samples = 0;
	}
	if (tpid <= 0)
		return;
	v = proc_merging_pages(tpid);
	if (v < 0)
		return;
	s->t_to = scans;
	s->t_samples++;
	if (v > s->t_max)
		s->t_max = v;
}

static bool alive(struct wproc *p)
{
	return p->pid > 0 && get_stage(p) >= ST_READY;
}

/* Sample every process and the global counters; a line a second. */
static void sample(struct ctl *c)
{
	struct state *st = c->st;
	long sharing = ksm_get("pages_sharing"), scans = ksm_get("full_scans");
	bool print = now() - c->last_print >= 1.0;
	char line[512];
	int i, len;

	len = snprintf(line, sizeof(line), "t=%5.1f scans=%ld shared=%ld sharing=%ld |",
		       now() - c->start, scans, ksm_get("pages_shared"), sharing);
	for (i = 0; i < st->nprocs; i++) {
		struct wproc *p = &st->p[i];
		struct seen *s = &c->seen[i];
		long v;

		if (!alive(p))
			continue;
		sample_short(s, i, __atomic_load_n(&p->tpid, __ATOMIC_RELAXED),
			     scans);
		/* ksm_stat too: its reader takes the mmap lock. */
		proc_ksm_stat(p->pid, "ksm_rmap_items");
		v = proc_merging_pages(p->pid);
		if (v < 0)
			continue;
		s->samples++;
		if (v > s->max)
			s->max = v;
		if (sharing >= BUSY_SHARING) {
			s->busy++;
			s->zero_busy += !v;
		}
		if (print && len < (int)sizeof(line))
			len += snprintf(line + len, sizeof(line) - len, " %d:%ld",
					i, v);
	}
	if (print) {
		printf("# %s\n", line);
		fflush(stdout);
		c->last_print = now();
	}
}

/* Sample until @cond holds or @limit seconds passed: the last @cond. */
#define SAMPLE_UNTIL(c, cond, limit) ({				\
	struct ctl *__c = (c);					\
	double __end = now() + (limit);				\
	bool __ok;						\
								\
	sample(__c);						\
	while (!(__ok = (cond)) && now() < __end) {		\
		usleep(SAMPLE_US);				\
		sample(__c);					\
	}							\
	__ok;							\
})

static bool all_at(struct state *st, int stage)
{
	int i;

	for (i = 0; i < st->nprocs; i++) {
		struct wproc *p = &st->p[i];

		/* Children forked in PH_ACT are not there before. */
		if (stage == ST_READY && p->parent >= 0 && !p->early)
			continue;
		/* Nor those that start while the others churn. */
		if (stage < ST_QUIET && p->late)
			continue;
		if (p->pid <= 0 || get_stage(p) < stage)
			return false;
	}
	return true;
}

/* Does every process count what it must, and the sum what KSM counts? */
static bool counts_right(struct state *st, int stage)
{
	long sum = 0, v;
	int i;

	for (i = 0; i < st->nprocs; i++) {
		struct wproc *p = &st->p[i];

		if (p->pid <= 0 || get_stage(p) < stage)
			continue;
		v = proc_merging_pages(p->pid);
		if (v < p->expect || (p->exact && v != p->expect))
			return false;
		sum += v;
	}
	return sum == ksm_get("pages_shared") + ksm_get("pages_sharing");
}

/* Counts right at two full scans in a row: the workload has settled. */
static bool settled(struct state *st, int stage, long *right_at)
{
	long scans = ksm_get("full_scans");

	if (!counts_right(st, stage)) {
		*right_at = -1;
		return false;
	}
	if (*right_at < 0)
		*right_at = scans;
	return scans >= *right_at + 2;
}

/*
 * KSM pages mapped by @pid, from the "KSM:" lines of its smaps (in 6.12,
 * /proc/kpageflags sets KPF_KSM on every anonymous page): in the VMAs
 * within its region of @p, and in all its mergeable ("mg") VMAs.
 * 0, or -1 if smaps could not be read.
 */
static int smaps_ksm(struct wproc *p, long *region, long *mergeable)
{
	unsigned long start = 0, end = 0, s, e, lo, hi;
	char path[64], line[512];
	long kb = 0;
	FILE *f;

	lo = p->region;
	hi = lo + p->pages * page_size();
	*region = *mergeable = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", p->pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* sscanf() may fill s from "Anonymous:" too. */
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			start = s;
			end = e;
			kb = 0;
			continue;
		}
		if (!strncmp(line, "KSM:", 4))
			kb = strtol(line + 4, NULL, 10);
		if (strncmp(line, "VmFlags:", 8))
			continue;
		/* The last line of a VMA's entry. */
		if (strstr(line, " mg"))
			*mergeable += kb * 1024 / page_size();
		if (start >= lo && end <= hi)
			*region += kb * 1024 / page_size();
	}
	fclose(f);
	return 0;
}

/* The table: who is who, and who forks whom. */
static void plan(struct state *st)
{
	static const enum kind workers[] = {
		MADV, MADV_FORK, MADV_EARLY, PRCTL_EXEC, PRCTL_LATE,
		PRCTL_FORK, PRCTL_GROW, MREMAP_MOVE, MREMAP_GROW, PRCTL_HEAP,
		MADV_LATE, MADV_SHIFT,
	};
	/* Who maps its region on THPs, which merging splits. */
	unsigned int thp = 1 << MADV_FORK | 1 << MADV_EARLY | 1 << PRCTL_LATE |
			   1 << PRCTL_FORK | 1 << MREMAP_MOVE;
	int i, n = 0;

	for (i = 0; i < (int)ARRAY_SIZE(workers); i++) {
		st->p[n] = (struct wproc) {
			.kind = workers[i], .parent = -1, .child = -1,
			.exact = !merges_by_prctl(workers[i]),
			.thp = thp & (1 << workers[i]),
			.late = workers[i] == MADV_LATE,
		};
		n++;
	}
	for (i = 0; i < (int)ARRAY_SIZE(workers); i++) {
		enum kind k = workers[i];

		if (k != MADV_FORK && k != MADV_EARLY && k != PRCTL_EXEC &&
		    k != PRCTL_FORK && k != MADV_SHIFT)
			continue;
		st->p[n] = (struct wproc) {
			.kind = k == PRCTL_EXEC ? EXECED : CHILD,
			.parent = i, .child = -1,
			.early = k == MADV_EARLY || k == MADV_SHIFT,
			.exact = !merges_by_prctl(k), .thp = k == PRCTL_EXEC,
		};
		st->p[i].child = n;
		n++;
	}
	st->nprocs = n;
}

FIXTURE(mixed) {
	struct ksm_knobs knobs;
	struct state *st;
	int fd;
};

FIXTURE_SETUP(mixed)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	/* The state outlives execve() in the one that execs: a memfd. */
	self->fd = memfd_create("ksm_mixed_state", 0);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, ftruncate(self->fd, sizeof(*self->st)));
	self->st = mmap(NULL, sizeof(*self->st), PROT_READ | PROT_WRITE,
			MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->st);
	/* Nothing merged, ksmd stopped: the global counters mean us. */
	ksm_knobs_save(&self->knobs);
	ASSERT_EQ(0, ksm_set("run", 2));
	ASSERT_EQ(0, ksm_set("use_zero_pages", 0));
	ASSERT_EQ(0, ksm_set("run", 0));
	ASSERT_EQ(0, ksm_get("pages_shared") + ksm_get("pages_sharing"));
}

FIXTURE_TEARDOWN(mixed)
{
	int i, status;

	if (self->st && self->st != MAP_FAILED) {
		set_phase(self->st, PH_EXIT);
		for (i = 0; i < self->st->nprocs; i++)
			if (self->st->p[i].pid > 0 && self->st->p[i].parent < 0)
				kill(self->st->p[i].pid, SIGKILL);
		while (wait(&status) > 0)
			;
	}
	ksm_set("run", 2);
	ksm_knobs_restore(&self->knobs);
}

/*
 * One row a process: what it must count, what it counts (ksm_merging_pages
 * and ksm_stat), the KSM pages it maps in its region and where it merges,
 * its tracked pages, how often the samples read 0 while pages_sharing was
 * high, the most they read, what it did while churning, and its
 * short-lived children that never counted a page, of those sampled.
 */
static void print_table(struct ctl *c, const long *merging, const long *stat,
			const long *region_ksm, const long *mg_ksm)
{
	static const char row[] =
		"# %2d %-11s %5d%6ld %6ld %5ld %6ld %5ld %5ld %3ld/%-4ld %5ld %4d %ld/%ld %s%s%s\n";
	struct state *st = c->st;
	int i;

	printf("#  i %-11s %4s %6s %6s %5s %6s %5s %5s %8s %5s %4s %s %s\n",
	       "kind", "pid", "expect", "merged", "stat", "region", "mg", "rmap",
	       "zero/busy", "max", "ops", "short", "note");
	for (i = 0; i < st->nprocs; i++) {
		struct wproc *p = &st->p[i];
		struct seen *s = &c->seen[i];

		printf(row, i, kind_name[p->kind], p->pid, p->expect, merging[i],
		       stat[i], region_ksm[i], mg_ksm[i],
		       proc_ksm_stat(p->pid, "ksm_rmap_items"), s->zero_busy, s->busy,
		       s->max, p->ops, s->short_zero, s->shorts,
		       p->exact ? "" : "[prctl] ", p->thp ? "[thp] " : "",
		       p->note);
	}
	fflush(stdout);
}

TEST_F_TIMEOUT(mixed, workload, 180)
{
	long merging[MAX_PROCS], stat[MAX_PROCS], region_ksm[MAX_PROCS];
	long mg_ksm[MAX_PROCS], shared, sharing, scans, sum = 0, right_at;
	struct state *st = self->st;
	struct ctl c = { .st = st };
	int i, status;
	pid_t pid;

	plan(st);
	c.start = now();
	for (i = 0; i < st->nprocs; i++) {
		if (st->p[i].parent >= 0 || st->p[i].late)
			continue;
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid)
			worker(st, i, self->fd);
		st->p[i].pid = pid;
	}
	ASSERT_TRUE(WAIT_UNTIL(all_at(st, ST_READY), READY_S))
		TH_LOG("the processes did not set up");

	/* ksmd flat out: everything there merges. */
	ASSERT_EQ(0, ksm_set("pages_to_scan", 5000));
	ASSERT_EQ(0, ksm_set("sleep_millisecs", 0));
	ASSERT_EQ(0, ksm_set("run", 1));
	scans = ksm_get("full_scans");
	right_at = -1;
	if (!SAMPLE_UNTIL(&c, settled(st, ST_READY, &right_at) ||
			  ksm_get("full_scans") >= scans + MERGE_SCANS, MERGE_S) ||
	    !counts_right(st, ST_READY))
		TH_LOG("before the workload changes: counts not right after %ld full scans",
		       ksm_get("full_scans") - scans);

	/* Forks, a late prctl(), moves, growth, writes; an exec. */
	set_phase(st, PH_ACT);
	ASSERT_TRUE(SAMPLE_UNTIL(&c, all_at(st, ST_ACTED), READY_S))
		TH_LOG("the processes did not act");

	/* Short-lived forks and execs, moves, growing, writes, for a while. */
	set_phase(st, PH_CHURN);
	for (i = 0; i < st->nprocs; i++) {
		if (!st->p[i].late)
			continue;
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid)
			worker(st, i, self->fd);
		st->p[i].pid = pid;
	}
	SAMPLE_UNTIL(&c, false, CHURN_S);
	set_phase(st, PH_QUIET);
	ASSERT_TRUE(SAMPLE_UNTIL(&c, all_at(st, ST_QUIET), READY_S))
		TH_LOG("the processes did not quiet down");
	for (i = 0; i < st->nprocs; i++)
		sample_short(&c.seen[i], i, 0, ksm_get("full_scans"));

	scans = ksm_get("full_scans");
	right_at = -1;
	SAMPLE_UNTIL(&c, settled(st, ST_QUIET, &right_at) ||
		     ksm_get("full_scans") >= scans + SETTLE_SCANS, SETTLE_S);
	/* Two more full scans: whatever ksmd does, it has done. */
	scans = ksm_get("full_scans");
	SAMPLE_UNTIL(&c, ksm_get("full_scans") >= scans + 2, LAST_S);
	TH_LOG("%ld full scans in %.1f s", ksm_get("full_scans"), now() - c.start);

	/* Frozen: nothing changes the counters from now on. */
	ASSERT_EQ(0, ksm_set("run", 0));
	scans = ksm_get("full_scans");
	shared = ksm_get("pages_shared");
	sharing = ksm_get("pages_sharing");
	for (i = 0; i < st->nprocs; i++) {
		struct wproc *p = &st->p[i];

		merging[i] = proc_merging_pages(p->pid);
		stat[i] = proc_ksm_stat(p->pid, "ksm_merging_pages");
		EXPECT_EQ(0, smaps_ksm(p, &region_ksm[i], &mg_ksm[i]));
		sum += merging[i];
	}
	print_table(&c, merging, stat, region_ksm, mg_ksm);
	TH_LOG("pages_shared %ld + pages_sharing %ld = %ld; the processes count %ld",
	       shared, sharing, shared + sharing, sum);

	set_phase(st, PH_VERIFY);
	ASSERT_TRUE(WAIT_UNTIL(all_at(st, ST_VERIFIED), READY_S))
		TH_LOG("the processes did not verify their pages");
	EXPECT_EQ(scans, ksm_get("full_scans"));
	EXPECT_EQ(shared, ksm_get("pages_shared"));
	EXPECT_EQ(sharing, ksm_get("pages_sharing"));

	/* (a) Every KSM mapping is some process's, and only one's. */
	EXPECT_EQ(shared + sharing, sum);
	for (i = 0; i < st->nprocs; i++) {
		struct wproc *p = &st->p[i];
		struct seen *s = &c.seen[i];

		/* (c) Data intact. */
		EXPECT_EQ(0, p->bad)
			TH_LOG("%d %s: %ld pages (or short-lived children) found wrong data",
			       i, kind_name[p->kind], p->bad);
		EXPECT_EQ(0, p->err)
			TH_LOG("%d %s: churning failed: %s", i,
			       kind_name[p->kind], strerror(p->err));
		/* The workload merged: each page another page equals is merged. */
		EXPECT_EQ(p->expect, region_ksm[i])
			TH_LOG("%d %s: %ld of %ld pages that another equals on KSM pages",
			       i, kind_name[p->kind], region_ksm[i], p->expect);
		/* (b) Each process counts them, all and nothing else. */
		EXPECT_EQ(merging[i], stat[i]);
		EXPECT_EQ(mg_ksm[i], merging[i])
			TH_LOG("%d %s (pid %d): maps %ld KSM pages where it merges, counts %ld",
			       i, kind_name[p->kind], p->pid, mg_ksm[i], merging[i]);
		if (p->expect) {
			EXPECT_LT(0, merging[i])
				TH_LOG("%d %s (pid %d): 0 of %ld; 0 in %ld of %ld busy samples",
				       i, kind_name[p->kind], p->pid, p->expect,
				       s->zero_busy, s->busy);
		}
		/* With prctl(), more of it than its region may merge. */
		if (p->exact)
			EXPECT_EQ(p->expect, merging[i]);
		if (!p->exact)
			EXPECT_LE(p->expect, merging[i]);
		EXPECT_EQ(0, s->short_zero)
			TH_LOG("%d %s: %ld short-lived children never counted a page",
			       i, kind_name[p->kind], s->short_zero);
	}

	set_phase(st, PH_EXIT);
	for (i = 0; i < st->nprocs; i++) {
		if (st->p[i].parent >= 0)
			continue;
		EXPECT_EQ(st->p[i].pid, waitpid(st->p[i].pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("%d %s: status %#x", i, kind_name[st->p[i].kind],
			       status);
		st->p[i].pid = 0;
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--exec-worker"))
		return exec_worker(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "--exec-short"))
		return exec_short(atoi(argv[2]), atoi(argv[3]));
	return test_harness_run(argc, argv);
}
