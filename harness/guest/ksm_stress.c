// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_stress: a seeded, randomized stress of KSM (make stress).
 *
 * Worker processes hold anonymous memory made of a few known page
 * patterns (so that much of it merges), zero pages and unique pages, and
 * keep a shadow of what every page must hold.  At random they write pages
 * whole or in part, fork (the child checks, works a while and exits),
 * exit and respawn, toggle MADV_MERGEABLE and PR_SET_MEMORY_MERGE,
 * mprotect, munmap and remap, mremap, MADV_DONTNEED, MADV_FREE,
 * MADV_PAGEOUT, move_pages, MADV_COLLAPSE, do O_DIRECT I/O, vmsplice and
 * process_vm_writev on their pages, and poison pages of their own in
 * sacrificial children.  A controller flips KSM's knobs and compacts
 * memory while ksmd mostly runs flat out; the workers live in a memcg
 * whose limit forces reclaim to zram swap; on a debug kernel ksmd's
 * allocations fail now and then (fault injection).
 *
 * Every page is checked against its shadow before it is written, at
 * random points and before its process exits.  At the end, with every
 * process gone and run=2, KSM's counters must be 0, its slab caches empty
 * and kmemleak must not blame KSM.  Exit status 0 only if all is clean.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>

#include "ksm_guest.h"

#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef BIT
#define BIT(nr)			(1UL << (nr))
#endif
#define MPOL_MF_MOVE		BIT(1)
#define MPOL_MF_MOVE_ALL	BIT(2)
#define KPF_KSM			21

#define HPAGE		(2UL << 20)
#define NREG		4	/* regions per process */
#define NPAT		12	/* page patterns shared by all processes */
#define MAX_PROCS	64
#define MAX_RUN		64	/* pages one operation touches at most */
#define SLOTS		16	/* O_DIRECT slots (pages) per actor */
#define MAX_REPORTS	20	/* mismatches printed per process */
#define MAX_PIECES	256
#ifndef __noreturn
#define __noreturn	noreturn
#endif
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

typedef __u32 u32;
typedef __u64 u64;

enum op {
	OP_WRITE, OP_PARTIAL, OP_CHECK, OP_FORK, OP_EXIT, OP_MERGE, OP_PRCTL,
	OP_MPROTECT, OP_MUNMAP, OP_MREMAP, OP_DONTNEED, OP_FREE, OP_PAGEOUT,
	OP_MOVE_PAGES, OP_COLLAPSE, OP_ODIRECT, OP_VMSPLICE, OP_PVM,
	OP_HWPOISON, OP_HAMMER, OP_COMPACT, OP_KNOBS, NR_OPS,
	OP_PAUSE = NR_OPS, OP_INIT
};

/* Relative frequency of the workers' operations; 0: the controller's. */
static const struct {
	const char *name;
	int weight;
} ops[] = {
	[OP_WRITE]	= { "write", 200 },
	[OP_PARTIAL]	= { "partial", 100 },
	[OP_CHECK]	= { "check", 40 },
	[OP_FORK]	= { "fork", 5 },
	[OP_EXIT]	= { "exit", 1 },
	[OP_MERGE]	= { "merge", 30 },
	[OP_PRCTL]	= { "prctl", 4 },
	[OP_MPROTECT]	= { "mprotect", 20 },
	[OP_MUNMAP]	= { "munmap", 6 },
	[OP_MREMAP]	= { "mremap", 15 },
	[OP_DONTNEED]	= { "dontneed", 20 },
	[OP_FREE]	= { "free", 30 },
	[OP_PAGEOUT]	= { "pageout", 20 },
	[OP_MOVE_PAGES]	= { "move_pages", 20 },
	[OP_COLLAPSE]	= { "collapse", 6 },
	[OP_ODIRECT]	= { "odirect", 15 },
	[OP_VMSPLICE]	= { "vmsplice", 15 },
	[OP_PVM]	= { "pvm", 30 },
	[OP_HWPOISON]	= { "hwpoison", 2 },
	[OP_HAMMER]	= { "hammer", 3 },
	[OP_COMPACT]	= { "compact", 0 },
	[OP_KNOBS]	= { "knobs", 0 },
	[OP_PAUSE]	= { "pause", 0 },
	[OP_INIT]	= { "initial fill", 0 },
};

#define CRASH_OPS "fork,mremap,move_pages,pageout,merge"

static struct {
	unsigned long long seed;
	int duration, nprocs;
	long mib, limit_mib, swap_mib;
	int finj;		/* fault injection: -1 if available, 0 off, 1 on */
	int poison_max, verbose, pause_pct;
	unsigned int enabled;	/* 1 << op */
	char ops_arg[256];
} cfg = {
	.duration = 60, .nprocs = -1, .mib = -1, .limit_mib = -1,
	.swap_mib = -1, .finj = -1, .poison_max = 8, .pause_pct = -1,
};

/* Counters in memory shared by every process of the run. */
struct shared {
	long ops[NR_OPS + 2], refused[NR_OPS + 2];
	long verified, mismatches, failures;
	long max_sharing, sharing_incr, max_shared, max_zero;
	long poisoned, poison_ksm, poison_sigbus, poison_budget;
	long forks, respawns;
	int stop;
};

static struct shared *S;

/* A counter of S, which other processes update too. */
static void stat_add(long *counter, long n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

#define ST_MAYBE_ZERO	1	/* MADV_FREE'd, not fully written since */
#define ST_RO		2	/* mprotect()ed read-only */

struct region {
	char *addr;		/* page 0; the region is mapped contiguously */
	long npages, max;
	unsigned char *shadow;	/* what each page must hold */
	unsigned char *st;	/* ST_* of each page */
	unsigned char *last;	/* the operation that last changed each page */
	int mergeable;
};

/* This process: a worker, a worker's fork child, or a poisoner. */
static struct {
	int id, gen, child;
	struct region reg[NREG];
	pid_t kid, poisoner;
	int nkids;
	unsigned char *slot;	/* what our O_DIRECT slots hold */
	unsigned char slot_ok[SLOTS];
	long mismatches, reports, verified;
	int merge_any;
	unsigned long long rng;
} A;

static long ps;
static const char *role = "main";
static int nnodes = 1, dio_fd = -1, pvm_ok = 1;
static unsigned char *wbuf, *rbuf, *alt;	/* MAX_RUN + 1 pages each */
static double t_start;

/* ---- small helpers --------------------------------------------------- */

static unsigned long long rnd(void)
{
	A.rng += 0x9e3779b97f4a7c15ULL;
	return mix(A.rng);
}

static long rnd_below(long n)
{
	return n > 0 ? (long)(rnd() % (unsigned long long)n) : 0;
}

static int chance(int per_mille)
{
	return rnd_below(1000) < per_mille;
}

static void seed_rng(unsigned long long a, unsigned long long b)
{
	A.rng = mix(cfg.seed ^ mix(a << 32 ^ b ^ 0x5157a55ULL));
}

/* One write() per line, so that lines of concurrent processes never mix. */
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(1, buf, n) < 0)
		return;
}

static void fail(const char *fmt, ...)
{
	char msg[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	stat_add(&S->failures, 1);
	say("ksm_stress: FAIL seed=%llu pid=%d %s %d.%d: %s", cfg.seed,
	    getpid(), role, A.id, A.gen, msg);
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), err = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

static int write_long(const char *path, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return write_file(path, buf);
}

static long vmstat_read(const char *name)
{
	return proc_field("/proc/vmstat", name, ' ');
}

static int is_zero(const unsigned char *p, long len)
{
	const unsigned long long *w = (const void *)p;
	long i;

	for (i = 0; i < len / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

static void *map_anon(long bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fail("mmap %ld bytes: %s", bytes, strerror(errno));
		_exit(2);
	}
	return p;
}

/* A free hole of bytes at a huge page boundary (nothing mapped there). */
static char *hole(long bytes)
{
	char *p = mmap(NULL, bytes + HPAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (p == MAP_FAILED) {
		fail("reserving %ld bytes: %s", bytes, strerror(errno));
		_exit(2);
	}
	a = (char *)(((unsigned long)p + HPAGE - 1) & ~(HPAGE - 1));
	munmap(p, bytes + HPAGE);
	return a;
}

/* ---- page contents ----------------------------------------------------- */

static void fill_pattern(unsigned char *p, int pat)
{
	unsigned long long *w = (void *)p;
	long i;

	for (i = 0; i < ps / 8; i++)
		w[i] = mix(0x5eedULL << 48 | (unsigned long long)pat << 24 | i);
}

static void fill_random(unsigned char *p, long len, unsigned long long seed)
{
	unsigned long long w;
	long i;

	for (i = 0; i < len; i += 8) {
		w = mix(seed + i);
		memcpy(p + i, &w, len - i < 8 ? len - i : 8);
	}
}

/* A whole page as the workload writes them: mostly patterns. */
static void gen_page(unsigned char *p)
{
	long r = rnd_below(100);

	if (r < 80)
		fill_pattern(p, rnd_below(NPAT));
	else if (r < 90)
		memset(p, 0, ps);
	else
		fill_random(p, ps, rnd());
}

/*
 * Bytes [off, off + len) of a page: half the time the same bytes of a
 * pattern (the page may then equal that pattern again and re-merge).
 */
static void gen_partial(unsigned char *dst, long off, long len)
{
	if (chance(500)) {
		fill_pattern(alt, rnd_below(NPAT));
		memcpy(dst, alt + off, len);
	} else {
		fill_random(dst, len, rnd());
	}
}

static const char *identify(const unsigned char *p, char *buf, size_t n)
{
	int pat;

	if (is_zero(p, ps))
		return "all zeroes";
	for (pat = 0; pat < NPAT; pat++) {
		fill_pattern(alt, pat);
		if (!memcmp(p, alt, ps)) {
			snprintf(buf, n, "pattern %d", pat);
			return buf;
		}
	}
	return "unknown content";
}

/* ---- the shadow ------------------------------------------------------------ */

static unsigned char *page_at(struct region *r, long i)
{
	return (unsigned char *)r->addr + i * ps;
}

/* The report of a mismatch, in one piece to grep for. */
#define MISMATCH_LOG "ksm_stress: MISMATCH seed=%llu pid=%d %s %d.%d region=%d page=%ld/%ld addr=%p offset=%ld expected=%016llx found=%016llx (%ld bytes differ; expected %s, found %s; page %s%s, last changed by %s) %s"

static void mismatch(struct region *r, long i, const unsigned char *p,
		     const char *how)
{
	unsigned char *want = r->shadow + i * ps, *seen = rbuf + MAX_RUN * ps;
	unsigned long long e = 0, f = 0;
	char wbuf_[32], fbuf[32];
	long off, diff = 0, first = -1;

	memcpy(seen, p, ps);
	for (off = 0; off < ps; off++)
		if (seen[off] != want[off]) {
			diff++;
			if (first < 0)
				first = off;
		}
	if (first < 0)
		first = 0;
	off = first & ~7L;
	memcpy(&e, want + off, 8);
	memcpy(&f, seen + off, 8);
	stat_add(&S->mismatches, 1);
	A.mismatches++;
	if (A.reports++ < MAX_REPORTS)
		say(MISMATCH_LOG, cfg.seed, getpid(), role, A.id, A.gen,
		    (int)(r - A.reg), i, r->npages, (void *)p, first, e, f, diff,
		    identify(want, wbuf_, sizeof(wbuf_)),
		    identify(seen, fbuf, sizeof(fbuf)),
		    r->st[i] & ST_MAYBE_ZERO ? "MADV_FREE'd (zeroes allowed)" : "plain",
		    r->st[i] & ST_RO ? ", read-only" : "",
		    ops[r->last[i]].name, how);
	/* Go on from what is there, so that one fault is reported once. */
	memcpy(want, seen, ps);
	r->st[i] &= ~ST_MAYBE_ZERO;
}

/* Page i of r, now at p, against its shadow. */
static int verify_page_at(struct region *r, long i, const unsigned char *p,
			  const char *how)
{
	A.verified++;
	if (!memcmp(p, r->shadow + i * ps, ps))
		return 0;
	if ((r->st[i] & ST_MAYBE_ZERO) && is_zero(p, ps))
		return 0;
	mismatch(r, i, p, how);
	return -1;
}

static void verify_range(struct region *r, long i, long n, const char *how)
{
	for (; n > 0 && i < r->npages; i++, n--)
		verify_page_at(r, i, page_at(r, i), how);
}

static void verify_all(const char *how)
{
	int k;

	for (k = 0; k < NREG; k++)
		verify_range(&A.reg[k], 0, A.reg[k].npages, how);
}

/*
 * Right after a partial write to a MADV_FREE'd page: reclaim may have
 * dropped the page before the write, which then landed on zeroes.  The
 * write made the page dirty, so it now stays as it is: learn which.
 */
static void resolve(struct region *r, long i, long off, long len)
{
	unsigned char *p = page_at(r, i), *want = r->shadow + i * ps;

	r->st[i] &= ~ST_MAYBE_ZERO;
	A.verified++;
	if (!memcmp(p, want, ps))
		return;
	memset(alt, 0, ps);
	memcpy(alt + off, want + off, len);
	if (!memcmp(p, alt, ps)) {
		memcpy(want, alt, ps);
		return;
	}
	mismatch(r, i, p,
		 "(partial write to a MADV_FREE'd page: neither the old page nor zeroes around the write)");
}

/* Bytes [off, off + len) of region r were just written from src. */
static void wrote(struct region *r, long off, long len,
		  const unsigned char *src, int op)
{
	long i, s, e;

	for (i = off / ps; i * ps < off + len; i++) {
		s = off > i * ps ? off : i * ps;
		e = off + len < (i + 1) * ps ? off + len : (i + 1) * ps;
		memcpy(r->shadow + s, src + (s - off), e - s);
		r->last[i] = op;
		if (e - s == ps)
			r->st[i] &= ~ST_MAYBE_ZERO;
		else if (r->st[i] & ST_MAYBE_ZERO)
			resolve(r, i, s - i * ps, e - s);
	}
}

static void zeroed(struct region *r, long i, long n, int op, int keep_ro)
{
	long k;

	memset(r->shadow + i * ps, 0, n * ps);
	for (k = i; k < i + n; k++) {
		r->st[k] &= keep_ro ? ST_RO : 0;
		r->last[k] = op;
	}
}

/* ---- choosing where ---------------------------------------------------- */

static struct region *pick_region(void)
{
	return &A.reg[rnd_below(NREG)];
}

/* A run of pages starting at a random page: mostly short, at times long. */
static long pick_run(struct region *r, long *first)
{
	long n = chance(100) ? MAX_RUN : 1 + rnd_below(chance(300) ? 32 : 4);

	*first = rnd_below(r->npages);
	if (n > r->npages - *first)
		n = r->npages - *first;
	return n;
}

/* Like pick_run(), writable pages only; 0 if page *first is read-only. */
static long pick_rw_run(struct region *r, long *first, long most)
{
	long n = pick_run(r, first), k;

	if (n > most)
		n = most;
	for (k = 0; k < n; k++)
		if (r->st[*first + k] & ST_RO)
			break;
	return k;
}

/* ---- VMAs ------------------------------------------------------------------- */

/* The VMAs that make up [start, start + len), from /proc/self/maps. */
static int pieces(char *start, long len, char **pa, long *pl)
{
	unsigned long s, e, a = (unsigned long)start, z = a + len;
	char line[512];
	long total = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;

	if (!f)
		return -1;
	while (n < MAX_PIECES && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (s < a)
			s = a;
		if (e > z)
			e = z;
		if (s >= e)
			continue;
		pa[n] = (char *)s;
		pl[n++] = e - s;
		total += e - s;
	}
	fclose(f);
	if (total != len) {
		fail("region %p+%ld is mapped for %ld bytes only (%d VMAs)",
		     start, len, total, n);
		_exit(2);
	}
	return n;
}

static int map_fixed(char *at, long bytes)
{
	if (mmap(at, bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		fail("mmap(MAP_FIXED) %p+%ld: %s", at, bytes, strerror(errno));
		_exit(2);
	}
	return 0;
}

static void advise_new(struct region *r, char *at, long bytes)
{
	if (r->mergeable && madvise(at, bytes, MADV_MERGEABLE) && errno != EAGAIN)
		fail("madvise(MADV_MERGEABLE) of a new mapping: %s", strerror(errno));
}

/* ---- operations ------------------------------------------------------------ */

/* Not done now (its conditions are not met): counted. */
static int refused(int op)
{
	stat_add(&S->refused[op], 1);
	return 0;
}

/* The kernel said no, in a way it may: counted; with -v, why. */
static int refused_errno(int op)
{
	static int told[NR_OPS + 2];
	int err = errno;

	if (cfg.verbose && told[op]++ < 3)
		say("ksm_stress: %s %d.%d: %s refused: %s", role, A.id, A.gen,
		    ops[op].name, strerror(err));
	return refused(op);
}

static int enabled(int op)
{
	return cfg.enabled & 1U << op;
}

static void write_pages(struct region *r, long i, long n, int partial)
{
	long off, len;

	verify_range(r, i, n, "before a write");
	if (!partial) {
		for (off = 0; off < n; off++)
			gen_page(wbuf + off * ps);
		memcpy(page_at(r, i), wbuf, n * ps);
		wrote(r, i * ps, n * ps, wbuf, OP_WRITE);
		return;
	}
	off = rnd_below(ps);
	len = 1 + rnd_below(chance(700) ? 64 : ps - off);
	if (len > ps - off)
		len = ps - off;
	gen_partial(wbuf, off, len);
	memcpy(page_at(r, i) + off, wbuf, len);
	wrote(r, i * ps + off, len, wbuf, OP_PARTIAL);
}

static int op_write(int partial)
{
	struct region *r = pick_region();
	long i, n = pick_rw_run(r, &i, partial ? 1 : 16);

	if (!n)
		return refused(partial ? OP_PARTIAL : OP_WRITE);
	write_pages(r, i, n, partial);
	return 1;
}

static int op_check(void)
{
	if (chance(100))
		verify_all("at a random check");
	else
		verify_range(pick_region(), 0, MAX_RUN * 64, "at a random check");
	return 1;
}

static int op_merge(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i);
	int adv = chance(300) ? MADV_UNMERGEABLE : MADV_MERGEABLE;

	if (chance(300)) {
		i = 0;
		n = r->npages;
		r->mergeable = adv == MADV_MERGEABLE;
	}
	if (madvise(page_at(r, i), n * ps, adv)) {
		/* Unmerging needs memory: the memcg may be out of it. */
		if (errno == EAGAIN || errno == ENOMEM || errno == EINTR)
			return refused_errno(OP_MERGE);
		fail("madvise(%s) %ld pages: %s",
		     adv == MADV_MERGEABLE ? "MADV_MERGEABLE" : "MADV_UNMERGEABLE",
		     n, strerror(errno));
	}
	return 1;
}

static int op_prctl(void)
{
	int on = !A.merge_any, got;

	if (prctl(PR_SET_MEMORY_MERGE, on, 0, 0, 0)) {
		if (errno == EINVAL || errno == EAGAIN || errno == ENOMEM ||
		    errno == EINTR)
			return refused_errno(OP_PRCTL);
		fail("prctl(PR_SET_MEMORY_MERGE, %d): %s", on, strerror(errno));
		return 0;
	}
	A.merge_any = on;
	got = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	if (got != on)
		fail("PR_GET_MEMORY_MERGE says %d after setting %d", got, on);
	return 1;
}

static int op_mprotect(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i), k;
	int ro = chance(500);

	if (chance(300)) {
		i = 0;
		n = r->npages;
		ro = 0;
	}
	if (mprotect(page_at(r, i), n * ps, ro ? PROT_READ : PROT_READ | PROT_WRITE)) {
		fail("mprotect %ld pages: %s", n, strerror(errno));
		return 0;
	}
	for (k = i; k < i + n; k++)
		r->st[k] = ro ? r->st[k] | ST_RO : r->st[k] & ~ST_RO;
	if (chance(300))
		verify_range(r, i, n, "after mprotect");
	return 1;
}

/* munmap() and map again, in place or, for a whole region, elsewhere. */
static int op_munmap(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i), k;

	if (chance(150)) {
		munmap(r->addr, r->npages * ps);
		r->addr = hole(r->max * ps);
		map_fixed(r->addr, r->npages * ps);
		zeroed(r, 0, r->npages, OP_MUNMAP, 0);
		advise_new(r, r->addr, r->npages * ps);
		/* Give the fresh mapping content to merge. */
		if (chance(700))
			for (k = 0; k < r->npages; k += MAX_RUN)
				write_pages(r, k, r->npages - k < MAX_RUN ?
					    r->npages - k : MAX_RUN, 0);
		return 1;
	}
	/* MAP_FIXED alone replaces the old pages just as well. */
	if (chance(500) && munmap(page_at(r, i), n * ps))
		fail("munmap: %s", strerror(errno));
	map_fixed((char *)page_at(r, i), n * ps);
	zeroed(r, i, n, OP_MUNMAP, 0);
	advise_new(r, (char *)page_at(r, i), n * ps);
	return 1;
}

/* Move region r to a new hole, VMA by VMA; then resize it to np pages. */
static int relocate(struct region *r, long np)
{
	char *pa[MAX_PIECES], *to, *last;
	long pl[MAX_PIECES], old = r->npages, k, ll;
	int n = pieces(r->addr, old * ps, pa, pl), j;

	/* Find the hole after reading /proc/self/maps: nothing maps into it. */
	to = hole(r->max * ps);

	for (j = 0; j < n; j++)
		if (mremap(pa[j], pl[j], pl[j], MREMAP_MAYMOVE | MREMAP_FIXED,
			   to + (pa[j] - r->addr)) == MAP_FAILED) {
			fail("mremap of %ld bytes to %p: %s", pl[j],
			     to + (pa[j] - r->addr), strerror(errno));
			_exit(2);
		}
	r->addr = to;
	if (np < old) {
		if (munmap(r->addr + np * ps, (old - np) * ps))
			fail("munmap of a region's tail: %s", strerror(errno));
		r->npages = np;
		return 1;
	}
	if (np == old)
		return 1;
	/* Grow the last VMA in place: the new pages take its protection. */
	last = to + (pa[n - 1] - pa[0]);
	ll = pl[n - 1];
	if (mremap(last, ll, ll + (np - old) * ps, 0) == MAP_FAILED) {
		if (mmap(r->addr + old * ps, (np - old) * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) ==
		    MAP_FAILED)
			return refused_errno(OP_MREMAP);
		zeroed(r, old, np - old, OP_MREMAP, 0);
		advise_new(r, r->addr + old * ps, (np - old) * ps);
	} else {
		zeroed(r, old, np - old, OP_MREMAP, 0);
		for (k = old; k < np; k++)
			r->st[k] = r->st[old - 1] & ST_RO;
	}
	r->npages = np;
	return 1;
}

/* Move part of one VMA away and back: its pages travel twice. */
static int out_and_back(struct region *r)
{
	char *pa[MAX_PIECES], *tmp;
	long pl[MAX_PIECES], first, len, k;
	int n = pieces(r->addr, r->npages * ps, pa, pl), j = rnd_below(n);

	first = rnd_below(pl[j] / ps);
	len = 1 + rnd_below(pl[j] / ps - first);
	first = (pa[j] - r->addr) / ps + first;
	tmp = hole(len * ps);
	if (mremap(page_at(r, first), len * ps, len * ps,
		   MREMAP_MAYMOVE | MREMAP_FIXED, tmp) == MAP_FAILED) {
		fail("mremap %ld pages out: %s", len, strerror(errno));
		return 0;
	}
	for (k = 0; k < len && k < 8; k++)
		verify_page_at(r, first + k, (unsigned char *)tmp + k * ps,
			       "while moved away by mremap");
	if (mremap(tmp, len * ps, len * ps, MREMAP_MAYMOVE | MREMAP_FIXED,
		   page_at(r, first)) == MAP_FAILED) {
		fail("mremap %ld pages back: %s", len, strerror(errno));
		_exit(2);
	}
	return 1;
}

static int op_mremap(void)
{
	struct region *r = pick_region();
	long np = r->npages, min = r->max / 4 > 1 ? r->max / 4 : 1;
	int how = rnd_below(10);

	if (how < 4)
		return out_and_back(r);
	if (how < 6 || how == 9)
		np = r->npages + rnd_below(r->max - r->npages + 1);
	else if (how < 8)
		np = min + rnd_below(r->npages - min + 1);
	if (how < 9)
		return relocate(r, np);
	/* In place: grow the last VMA if its neighbour leaves room. */
	{
		char *pa[MAX_PIECES];
		long pl[MAX_PIECES], old = r->npages, k;
		int n = pieces(r->addr, old * ps, pa, pl);

		if (np == old)
			return refused(OP_MREMAP);
		if (mremap(pa[n - 1], pl[n - 1], pl[n - 1] + (np - old) * ps, 0) ==
		    MAP_FAILED)
			return refused_errno(OP_MREMAP);
		zeroed(r, old, np - old, OP_MREMAP, 0);
		for (k = old; k < np; k++)
			r->st[k] = r->st[old - 1] & ST_RO;
		r->npages = np;
	}
	return 1;
}

static int op_dontneed(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i);

	if (madvise(page_at(r, i), n * ps, MADV_DONTNEED)) {
		fail("madvise(MADV_DONTNEED): %s", strerror(errno));
		return 0;
	}
	zeroed(r, i, n, OP_DONTNEED, 1);
	return 1;
}

/*
 * Not while a fork relative lives: 6.12 marks a folio still shared
 * copy-on-write lazyfree when its ptes are clean (swapped in by a read,
 * unshared from a KSM page), and reclaim then discards it under the
 * relative too, whose pages read zeroes, a case the shadow cannot see.
 */
static int op_free(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i), k, j;

	if (A.child || A.kid)
		return refused(OP_FREE);
	if (madvise(page_at(r, i), n * ps, MADV_FREE)) {
		fail("madvise(MADV_FREE): %s", strerror(errno));
		return 0;
	}
	for (k = i; k < i + n; k++) {
		r->st[k] |= ST_MAYBE_ZERO;
		r->last[k] = OP_FREE;
	}
	/* And reuse some of it at once, wholly or in part. */
	if (chance(400))
		for (k = 0; k < 4; k++) {
			j = i + rnd_below(n);
			if (!(r->st[j] & ST_RO))
				write_pages(r, j, 1, chance(600));
		}
	return 1;
}

static int op_pageout(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i);
	int adv = chance(800) ? MADV_PAGEOUT : MADV_COLD;

	if (chance(200)) {
		i = 0;
		n = r->npages;
	}
	if (madvise(page_at(r, i), n * ps, adv)) {
		if (errno == EINVAL || errno == EAGAIN || errno == ENOMEM)
			return refused_errno(OP_PAGEOUT);
		fail("madvise(%s): %s", adv == MADV_COLD ? "MADV_COLD" : "MADV_PAGEOUT",
		     strerror(errno));
	}
	return 1;
}

static int op_move_pages(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i), k, ret;
	void *pages[MAX_RUN];
	int nodes[MAX_RUN], status[MAX_RUN], node = rnd_below(nnodes);
	int flags = chance(500) ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE;

	if (nnodes < 2)
		return refused(OP_MOVE_PAGES);
	for (k = 0; k < n; k++) {
		pages[k] = page_at(r, i + k);
		nodes[k] = chance(800) ? node : (int)rnd_below(nnodes);
	}
	ret = syscall(__NR_move_pages, 0, n, pages, nodes, status, flags);
	if (ret < 0) {
		if (errno == ENOMEM || errno == EBUSY || errno == EAGAIN)
			return refused_errno(OP_MOVE_PAGES);
		fail("move_pages %ld pages: %s", n, strerror(errno));
		return 0;
	}
	verify_range(r, i, n, "after move_pages");
	return 1;
}

static int op_collapse(void)
{
	struct region *r = pick_region();
	unsigned long a = (unsigned long)r->addr, z = a + r->npages * ps;
	unsigned long s = (a + HPAGE - 1) & ~(HPAGE - 1);

	if (s + HPAGE > z)
		return refused(OP_COLLAPSE);
	s += rnd_below((z - s) / HPAGE) * HPAGE;
	if (chance(300))
		madvise((void *)s, HPAGE, chance(700) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (madvise((void *)s, HPAGE, MADV_COLLAPSE)) {
		/* Not collapsible now, or THP off: only errors of that kind. */
		if (errno == EINVAL || errno == EAGAIN || errno == ENOMEM ||
		    errno == EBUSY)
			return refused_errno(OP_COLLAPSE);
		fail("madvise(MADV_COLLAPSE): %s", strerror(errno));
	}
	verify_range(r, (s - a) / ps, HPAGE / ps, "after MADV_COLLAPSE");
	return 1;
}

/*
 * O_DIRECT on a zram disk: a write pins our pages while the device reads
 * them; a read has the device write into our pages (through the pin).
 */
static int op_odirect(void)
{
	struct region *r = pick_region();
	long i, n, s, k, done;
	off_t at;

	if (dio_fd < 0)
		return refused(OP_ODIRECT);
	s = rnd_below(SLOTS);
	at = ((off_t)A.id * SLOTS + s) * ps;
	if (chance(500)) {
		n = pick_run(r, &i);
		if (n > SLOTS - s)
			n = SLOTS - s;
		done = pwrite(dio_fd, page_at(r, i), n * ps, at);
		if (done != n * ps) {
			fail("O_DIRECT write of %ld pages: %ld (%s)", n, done,
			     strerror(errno));
			return 0;
		}
		done = pread(dio_fd, rbuf, n * ps, at);
		if (done != n * ps) {
			fail("O_DIRECT read back of %ld pages: %ld (%s)", n, done,
			     strerror(errno));
			return 0;
		}
		for (k = 0; k < n; k++) {
			verify_page_at(r, i + k, rbuf + k * ps,
				       "(the data O_DIRECT wrote from the page)");
			memcpy(A.slot + (s + k) * ps, rbuf + k * ps, ps);
			A.slot_ok[s + k] = 1;
		}
		return 1;
	}
	n = pick_rw_run(r, &i, SLOTS - s);
	for (k = 0; k < n; k++)
		if (!A.slot_ok[s + k])
			break;
	n = k;
	if (!n)
		return refused(OP_ODIRECT);
	verify_range(r, i, n, "before an O_DIRECT read into it");
	done = pread(dio_fd, page_at(r, i), n * ps, at);
	if (done != n * ps) {
		fail("O_DIRECT read of %ld pages: %ld (%s)", n, done, strerror(errno));
		return 0;
	}
	wrote(r, i * ps, n * ps, A.slot + s * ps, OP_ODIRECT);
	verify_range(r, i, n, "after an O_DIRECT read into it");
	return 1;
}

/* vmsplice() takes references on our pages; the pipe must read them. */
static int op_vmsplice(void)
{
	struct region *r = pick_region();
	long i, n = pick_run(r, &i), got = 0, k, len;
	struct iovec iov;
	ssize_t ret;
	int pfd[2];

	if (n > 16)
		n = 16;
	if (pipe(pfd))
		return refused(OP_VMSPLICE);
	iov.iov_base = page_at(r, i);
	iov.iov_len = n * ps;
	ret = vmsplice(pfd[1], &iov, 1, SPLICE_F_NONBLOCK);
	if (ret < 0) {
		close(pfd[0]);
		close(pfd[1]);
		if (errno == EAGAIN || errno == ENOMEM)
			return refused_errno(OP_VMSPLICE);
		fail("vmsplice of %ld pages: %s", n, strerror(errno));
		return 0;
	}
	/* Give ksmd a moment with the references held. */
	usleep(rnd_below(3000));
	while (got < ret) {
		k = read(pfd[0], rbuf + got, ret - got);
		if (k <= 0)
			break;
		got += k;
	}
	close(pfd[0]);
	close(pfd[1]);
	if (got != ret) {
		fail("reading back %ld vmspliced bytes: got %ld", (long)ret, got);
		return 0;
	}
	for (k = 0; k * ps < got; k++) {
		len = got - k * ps < ps ? got - k * ps : ps;
		A.verified++;
		if (!memcmp(rbuf + k * ps, r->shadow + (i + k) * ps, len))
			continue;
		if ((r->st[i + k] & ST_MAYBE_ZERO) && is_zero(rbuf + k * ps, len & ~7L))
			continue;
		if (len == ps)
			mismatch(r, i + k, rbuf + k * ps, "(the data vmsplice() passed)");
		else
			fail("vmspliced page %ld of region %d differs from its shadow",
			     i + k, (int)(r - A.reg));
	}
	return 1;
}

/*
 * Whether err is what the kernel answers to a system call it lacks
 * (process_vm_*() without CONFIG_CROSS_MEMORY_ATTACH): what it answers
 * to system call -1.
 */
static int no_such_syscall(int err)
{
	int saved = errno, missing;

	syscall(-1L);
	missing = errno;
	errno = saved;
	return err == missing;
}

/* process_vm_writev()/readv() on ourselves: remote GUP on our pages. */
static int op_pvm(void)
{
	struct region *r = pick_region();
	struct iovec lv, rv;
	long i, n, off = 0, len;
	ssize_t ret;

	if (!pvm_ok)
		return refused(OP_PVM);
	if (chance(400)) {
		n = pick_run(r, &i);
		lv.iov_base = rbuf;
		rv.iov_base = page_at(r, i);
		lv.iov_len = n * ps;
		rv.iov_len = lv.iov_len;
		ret = process_vm_readv(getpid(), &lv, 1, &rv, 1, 0);
		if (ret != n * ps) {
			fail("process_vm_readv of %ld pages: %ld (%s)", n, (long)ret,
			     strerror(errno));
			return 0;
		}
		for (off = 0; off < n; off++)
			verify_page_at(r, i + off, rbuf + off * ps,
				       "(read by process_vm_readv)");
		return 1;
	}
	n = pick_rw_run(r, &i, 4);
	if (!n)
		return refused(OP_PVM);
	verify_range(r, i, n, "before process_vm_writev");
	if (chance(500)) {
		for (off = 0; off < n; off++)
			gen_page(wbuf + off * ps);
		off = 0;
		len = n * ps;
	} else {
		off = rnd_below(ps);
		len = 1 + rnd_below(n * ps - off);
		fill_random(wbuf, len, rnd());
	}
	lv.iov_base = wbuf;
	rv.iov_base = page_at(r, i) + off;
	lv.iov_len = len;
	rv.iov_len = lv.iov_len;
	ret = process_vm_writev(getpid(), &lv, 1, &rv, 1, 0);
	if (ret < 0 && no_such_syscall(errno)) {
		pvm_ok = 0;
		return refused(OP_PVM);
	}
	if (ret < 0) {
		fail("process_vm_writev of %ld bytes: %s", len, strerror(errno));
		return 0;
	}
	wrote(r, i * ps + off, ret, wbuf, OP_PVM);
	if (ret != len)
		fail("process_vm_writev wrote %ld of %ld bytes", (long)ret, len);
	return 1;
}

/*
 * Rewrite a whole region with new patterns after it held still for about
 * a scan, a few times: ksmd is then likely merging some of its pages, and
 * a write that lands between its compare and its write-protect must not
 * be lost (6.12 compares again once the pte is write-protected).
 */
static int sweep_region(struct region *r)
{
	long i, n, k, round, rounds = 2 + rnd_below(3);

	for (round = 0; round < rounds; round++) {
		for (i = 0; i < r->npages; i += n ? n : 1) {
			for (n = 0; i + n < r->npages && n < MAX_RUN; n++)
				if (r->st[i + n] & ST_RO)
					break;
			for (k = 0; k < n; k++)
				fill_pattern(wbuf + k * ps, rnd_below(NPAT));
			memcpy(page_at(r, i), wbuf, n * ps);
			wrote(r, i * ps, n * ps, wbuf, OP_HAMMER);
		}
		usleep(1000);
		verify_range(r, 0, r->npages, "after a sweep (a write lost to a merge?)");
		usleep(200000 + rnd_below(2000000));
	}
	return 1;
}

/*
 * Or blip words of a few pattern pages: each stays its pattern but for
 * short spells, so that ksmd keeps taking it for a stable candidate; a
 * blip that lands between ksmd's compare and its write-protect is seen
 * lost within the spell (the word reads the pattern's again).
 */
static int op_hammer(void)
{
	struct region *r = pick_region();
	long i, n = pick_rw_run(r, &i, 16), k, o;
	unsigned long long v, got;
	double end, t;

	if (chance(300))
		return sweep_region(r);
	if (!n)
		return refused(OP_HAMMER);
	verify_range(r, i, n, "before hammering");
	for (k = 0; k < n; k++)
		fill_pattern(wbuf + k * ps, rnd_below(NPAT));
	memcpy(page_at(r, i), wbuf, n * ps);
	wrote(r, i * ps, n * ps, wbuf, OP_HAMMER);
	for (end = now() + 0.5 + rnd_below(3000) / 1000.0; now() < end;) {
		k = rnd_below(n);
		o = (i + k) * ps + rnd_below(ps / 8) * 8;
		v = rnd();
		memcpy(page_at(r, 0) + o, &v, 8);
		wrote(r, o, 8, (void *)&v, OP_HAMMER);
		for (t = now(); now() - t < 0.0002;) {
			memcpy(&got, page_at(r, 0) + o, 8);
			if (got != v)
				break;
		}
		verify_page_at(r, i + k, page_at(r, i + k),
			       "while hammered (a write lost to a merge?)");
		memcpy(page_at(r, 0) + o, wbuf + o - i * ps, 8);
		wrote(r, o, 8, wbuf + o - i * ps, OP_HAMMER);
		usleep(200 + rnd_below(2000) / n);
	}
	verify_range(r, i, n, "after hammering");
	return 1;
}

/* ---- fork children ------------------------------------------------------ */

struct poke {
	int reg;
	long off, len;
	unsigned long long seed;
};

static void worker_loop(long max_ops);
static int pick_op(void);

static void __noreturn finish(void);

static void run_child(int rfd)
{
	struct poke pk[8];
	int n = 0, k;

	A.child = 1;
	role = "fork child";
	A.id += cfg.nprocs;
	A.nkids = 0;
	A.kid = 0;
	A.poisoner = 0;
	A.mismatches = 0;
	A.reports = 0;
	memset(A.slot_ok, 0, sizeof(A.slot_ok));
	seed_rng(A.id, (unsigned long long)A.gen << 32 | (unsigned long long)getpid());
	/* The parent may first write into our pages: learn what and where. */
	if (read(rfd, &n, sizeof(n)) != sizeof(n))
		n = 0;
	if (n < 0 || n > 8 || read(rfd, pk, n * sizeof(pk[0])) != (ssize_t)(n * sizeof(pk[0])))
		n = 0;
	close(rfd);
	/* Each on a page of its own: wrote() may read the page back. */
	for (k = 0; k < n; k++) {
		fill_random(wbuf, pk[k].len, pk[k].seed);
		wrote(&A.reg[pk[k].reg], pk[k].off, pk[k].len, wbuf, OP_PVM);
		verify_range(&A.reg[pk[k].reg], pk[k].off / ps, 1,
			     "(written by the parent with process_vm_writev)");
	}
	if (prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) != A.merge_any && A.merge_any >= 0)
		fail("fork child: PR_GET_MEMORY_MERGE is %d, the parent's %d",
		     prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0), A.merge_any);
	verify_all("in a fork child at its start");
	worker_loop(10 + rnd_below(120));
	finish();
}

static int op_fork(void)
{
	struct poke pk[8];
	struct iovec lv, rv;
	int pfd[2], n = 0, k, j;
	struct region *r;
	long i;
	ssize_t ret;
	pid_t pid;

	if (A.kid)
		return refused(OP_FORK);
	if (pipe(pfd))
		return refused(OP_FORK);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return refused(OP_FORK);
	}
	if (!pid) {
		close(pfd[1]);
		run_child(pfd[0]);
	}
	close(pfd[0]);
	A.kid = pid;
	stat_add(&S->forks, 1);
	/* Write into the child's copy of our pages, from our side. */
	if (enabled(OP_PVM) && pvm_ok && chance(500))
		for (k = 0; k < 8 && n < 8; k++) {
			r = pick_region();
			if (!pick_rw_run(r, &i, 1))
				continue;
			for (j = 0; j < n; j++)
				if (pk[j].reg == r - A.reg && pk[j].off / ps == i)
					break;
			if (j < n)
				continue;
			pk[n].reg = r - A.reg;
			pk[n].off = i * ps + (chance(300) ? 0 : rnd_below(ps));
			pk[n].len = 1 + rnd_below((i + 1) * ps - pk[n].off);
			pk[n].seed = rnd();
			fill_random(wbuf, pk[n].len, pk[n].seed);
			lv.iov_base = wbuf;
			rv.iov_base = r->addr + pk[n].off;
			lv.iov_len = pk[n].len;
			rv.iov_len = lv.iov_len;
			ret = process_vm_writev(pid, &lv, 1, &rv, 1, 0);
			if (ret <= 0)
				continue;
			pk[n++].len = ret;
		}
	if (write(pfd[1], &n, sizeof(n)) != sizeof(n) ||
	    write(pfd[1], pk, n * sizeof(pk[0])) != (ssize_t)(n * sizeof(pk[0])))
		fail("telling the fork child what we wrote: %s", strerror(errno));
	close(pfd[1]);
	return 1;
}

/* ---- hwpoison --------------------------------------------------------------- */

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

/* The report of a hwpoisoned page read, in one piece to grep for. */
#define POISON_READ_LOG "ksm_stress: MISMATCH seed=%llu pid=%d: a hwpoisoned page read wrong data instead of SIGBUS (first word %016llx, expected %016llx)"

/*
 * 0: SIGBUS; 1: wrong data (reported); 2: the page still reads right.
 * Byte by byte, with loads the compiler keeps as they are.
 */
static int touch_poisoned(const unsigned char *p, const unsigned char *want)
{
	struct sigaction sa = { .sa_handler = on_bus };
	long k;

	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jmp, 1))
		return 0;
	for (k = 0; k < ps; k++)
		rbuf[k] = __atomic_load_n(&p[k], __ATOMIC_RELAXED);
	if (!memcmp(rbuf, want, ps))
		return 2;
	say(POISON_READ_LOG, cfg.seed, getpid(), *(unsigned long long *)rbuf,
	    *(const unsigned long long *)want);
	stat_add(&S->mismatches, 1);
	return 1;
}

static int page_is_ksm(void *addr)
{
	u64 ent = 0, flags = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY), fk;

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, 8, (unsigned long)addr / ps * 8) != 8)
		ent = 0;
	close(fd);
	if (!(ent >> 63))
		return 0;
	fk = open("/proc/kpageflags", O_RDONLY);
	if (fk < 0)
		return 0;
	if (pread(fk, &flags, 8, (ent & ((1ULL << 55) - 1)) * 8) != 8)
		flags = 0;
	close(fk);
	return flags >> KPF_KSM & 1;
}

/*
 * A sacrificial child poisons a page of its own.  Half the time the page
 * is first merged with its twin in a grandchild: both must then get
 * SIGBUS (or, if the twins were no longer merged, the twin its data).
 * Exit: 0 as expected, 1 wrong data, 2 readable after poison, 3 refused.
 */
static int poisoner(void)
{
	unsigned char *want = alt + ps;
	int twin = chance(500), pfd[2], k, rc, st;
	struct pollfd pf;
	pid_t t = 0;
	char c = 'x';
	unsigned char *p;
	struct sigaction sa = { 0 };
	double t0;

	for (k = 0; k < NREG; k++)
		munmap(A.reg[k].addr, A.reg[k].npages * ps);
	p = map_anon(ps);
	fill_random(want, ps, rnd());
	memcpy(p, want, ps);
	if (twin && pipe(pfd) == 0) {
		t = fork();
		if (t == 0) {
			close(pfd[1]);
			/* Our own copy of the page, mergeable. */
			memcpy(p, want, ps);
			madvise(p, ps, MADV_MERGEABLE);
			pf.fd = pfd[0];
			pf.events = POLLIN;
			if (poll(&pf, 1, 60000) != 1 || read(pfd[0], &c, 1) != 1)
				c = 'x';
			if (c == 'p')
				_exit(touch_poisoned(p, want) == 1);
			/* Not poisoned: the page must be intact. */
			_exit(memcmp(p, want, ps) != 0);
		}
		close(pfd[0]);
		memcpy(p, want, ps);
		madvise(p, ps, MADV_MERGEABLE);
		for (t0 = now(); !page_is_ksm(p) && now() - t0 < 10;)
			usleep(20000);
		if (page_is_ksm(p))
			stat_add(&S->poison_ksm, 1);
	}
	/* 6.12 kills the caller with SIGBUS as madvise() returns: catch it. */
	sa.sa_handler = on_bus;
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jmp, 1)) {
		stat_add(&S->poisoned, 1);
		if (t > 0)
			c = 'p';
		rc = touch_poisoned(p, want);
	} else if (madvise(p, ps, MADV_HWPOISON)) {
		rc = errno == EPERM || errno == EBUSY || errno == EINVAL ||
		     errno == EIO || errno == EHWPOISON ? 3 : 4;
		if (rc == 4)
			say("ksm_stress: madvise(MADV_HWPOISON): %s", strerror(errno));
	} else {
		stat_add(&S->poisoned, 1);
		if (t > 0)
			c = 'p';
		rc = touch_poisoned(p, want);
	}
	if (!rc)
		stat_add(&S->poison_sigbus, 1);
	if (t > 0) {
		if (write(pfd[1], &c, 1) != 1)
			rc = 4;
		close(pfd[1]);
		if (waitpid(t, &st, 0) == t) {
			if (WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS)
				stat_add(&S->poison_sigbus, 1);
			else if (!WIFEXITED(st) || WEXITSTATUS(st))
				rc = 1;
		}
	}
	_exit(rc);
}

static int op_hwpoison(void)
{
	pid_t pid;

	if (A.poisoner || __atomic_sub_fetch(&S->poison_budget, 1, __ATOMIC_RELAXED) < 0)
		return refused(OP_HWPOISON);
	pid = fork();
	if (pid < 0)
		return refused(OP_HWPOISON);
	if (!pid) {
		A.child = 1;
		role = "hwpoison child";
		seed_rng(A.id + 1000, (unsigned long long)getpid());
		poisoner();
	}
	A.poisoner = pid;
	return 1;
}

/* The report of a poisoned page that still reads, in one piece to grep for. */
#define POISON_KEPT_LOG "hwpoison child %d: the poisoned page still read its data instead of SIGBUS"

/* Collect our children; block (with a bound) if wait. */
static void reap(int wait)
{
	double t0 = now();
	pid_t pid;
	int st;

	while (A.kid || A.poisoner) {
		pid = waitpid(-1, &st, wait ? 0 : WNOHANG);
		if (pid <= 0) {
			if (!wait || errno == ECHILD || now() - t0 > 600)
				break;
			continue;
		}
		if (pid == A.kid) {
			A.kid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) <= 1)
				continue;
			if (WIFSIGNALED(st))
				fail("fork child %d killed by signal %d (%s)", pid,
				     WTERMSIG(st), strsignal(WTERMSIG(st)));
			else
				fail("fork child %d exited %d", pid, WEXITSTATUS(st));
		} else if (pid == A.poisoner) {
			A.poisoner = 0;
			if (WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS) {
				stat_add(&S->poison_sigbus, 1);
				continue;
			}
			if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
				refused(OP_HWPOISON);
				continue;
			}
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				continue;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
				fail(POISON_KEPT_LOG, pid);
			else if (WIFSIGNALED(st))
				fail("hwpoison child %d killed by signal %d (%s)", pid,
				     WTERMSIG(st), strsignal(WTERMSIG(st)));
			else
				fail("hwpoison child %d exited %d", pid, WEXITSTATUS(st));
		}
	}
}

/* ---- the worker ----------------------------------------------------------- */

static void flush_counts(void)
{
	stat_add(&S->verified, A.verified);
	A.verified = 0;
}

static void __noreturn finish(void)
{
	reap(1);
	verify_all("before exit");
	flush_counts();
	exit(A.mismatches ? 1 : 0);
}

/* An enabled operation by weight, or a pause (cfg.pause_pct of them). */
static int pick_op(void)
{
	int total = 0, op, r;

	for (op = 0; op < NR_OPS; op++)
		if (enabled(op) && (!A.child || (op != OP_FORK && op != OP_EXIT &&
						 op != OP_HWPOISON)))
			total += ops[op].weight;
	total += total * cfg.pause_pct / (100 - cfg.pause_pct) + 1;
	r = rnd_below(total);
	for (op = 0; op < NR_OPS; op++) {
		if (!enabled(op) || (A.child && (op == OP_FORK || op == OP_EXIT ||
						 op == OP_HWPOISON)))
			continue;
		if (r < ops[op].weight)
			return op;
		r -= ops[op].weight;
	}
	return OP_PAUSE;
}

static int op_full_write(void)
{
	return op_write(0);
}

static int op_partial_write(void)
{
	return op_write(1);
}

static int (*const run_op[NR_OPS])(void) = {
	[OP_WRITE] = op_full_write,
	[OP_PARTIAL] = op_partial_write,
	[OP_CHECK] = op_check,
	[OP_FORK] = op_fork,
	[OP_MERGE] = op_merge,
	[OP_PRCTL] = op_prctl,
	[OP_MPROTECT] = op_mprotect,
	[OP_MUNMAP] = op_munmap,
	[OP_MREMAP] = op_mremap,
	[OP_DONTNEED] = op_dontneed,
	[OP_FREE] = op_free,
	[OP_PAGEOUT] = op_pageout,
	[OP_MOVE_PAGES] = op_move_pages,
	[OP_COLLAPSE] = op_collapse,
	[OP_ODIRECT] = op_odirect,
	[OP_VMSPLICE] = op_vmsplice,
	[OP_PVM] = op_pvm,
	[OP_HWPOISON] = op_hwpoison,
	[OP_HAMMER] = op_hammer,
};

static void worker_loop(long max_ops)
{
	int op, done;

	while (!__atomic_load_n(&S->stop, __ATOMIC_RELAXED) && max_ops--) {
		reap(0);
		op = pick_op();
		if (op == OP_EXIT) {
			stat_add(&S->ops[OP_EXIT], 1);
			finish();
		}
		if (op < NR_OPS && run_op[op]) {
			done = run_op[op]();
		} else {
			/* Let ksmd catch up with us now and then. */
			usleep(1000 + rnd_below(chance(100) ? 200000 : 10000));
			done = 1;
		}
		if (done)
			stat_add(&S->ops[op], 1);
		flush_counts();
	}
}

static void region_init(struct region *r, long npages)
{
	long k;

	r->npages = npages;
	r->max = npages + npages / 2;
	r->shadow = map_anon(r->max * ps);
	r->st = map_anon(r->max);
	r->last = map_anon(r->max);
	r->addr = hole(r->max * ps);
	map_fixed(r->addr, npages * ps);
	if (chance(300))
		madvise(r->addr, npages * ps, chance(500) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (k = 0; k < npages; k++) {
		gen_page(r->shadow + k * ps);
		r->last[k] = OP_INIT;
	}
	memcpy(r->addr, r->shadow, npages * ps);
	r->mergeable = enabled(OP_MERGE) ? chance(800) : 1;
	if (r->mergeable && madvise(r->addr, npages * ps, MADV_MERGEABLE))
		fail("madvise(MADV_MERGEABLE): %s", strerror(errno));
}

static void __noreturn worker(int id, int gen, const char *cg)
{
	long npages = cfg.mib * 1024 * 1024 / ps / NREG;
	int k;

	A.id = id;
	A.gen = gen;
	role = "worker";
	seed_rng(id, gen);
	if (cg && write_file(cg, "0"))
		fail("joining the memcg %s", cg);
	A.slot = map_anon(SLOTS * ps);
	A.merge_any = 0;
	if (enabled(OP_PRCTL) && chance(200) &&
	    !prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		A.merge_any = 1;
	for (k = 0; k < NREG; k++)
		region_init(&A.reg[k], npages < 16 ? 16 : npages);
	worker_loop(-1);
	finish();
}

/* ---- the controller -------------------------------------------------------- */

static const long scan_vals[] = { 100, 1000, 5000, 10000, 20000, 20000 };
static const long sleep_vals[] = { 0, 0, 0, 0, 1, 10, 20 };
static const long share_vals[] = { 2, 3, 8, 256, 256 };

static void knob(const char *name, long v, int busy_ok)
{
	char path[128];
	int err;

	snprintf(path, sizeof(path), KSM "%s", name);
	if (access(path, F_OK))
		return;
	err = write_long(path, v);
	stat_add(&S->ops[OP_KNOBS], 1);
	if (cfg.verbose)
		say("ksm_stress: %5.1fs %s=%ld%s%s", now() - t_start, name, v,
		    err ? ": " : "", err ? strerror(-err) : "");
	if (!err)
		return;
	if ((busy_ok && err == -EBUSY) ||
	    (!strcmp(name, "run") && (err == -EINTR || err == -ENOMEM ||
				      err == -EAGAIN))) {
		stat_add(&S->refused[OP_KNOBS], 1);
		return;
	}
	fail("controller: %s=%ld: %s", name, v, strerror(-err));
}

static void sample(long *last)
{
	long v = ksm_read("pages_sharing"), m;

	if (v > *last)
		stat_add(&S->sharing_incr, v - *last);
	if (v >= 0)
		*last = v;
	m = S->max_sharing;
	if (v > m)
		S->max_sharing = v;
	v = ksm_read("pages_shared");
	if (v > S->max_shared)
		S->max_shared = v;
	v = ksm_read("ksm_zero_pages");
	if (v > S->max_zero)
		S->max_zero = v;
}

static void __noreturn controller(void)
{
	double next_knob = now() + 1, next_compact = now() + 3, run_back = 0;
	long last = 0;

	role = "controller";
	seed_rng(999, 0);
	while (!__atomic_load_n(&S->stop, __ATOMIC_RELAXED)) {
		sample(&last);
		if (run_back && now() >= run_back) {
			knob("run", 1, 0);
			run_back = 0;
		}
		if (enabled(OP_KNOBS) && !run_back && now() >= next_knob) {
			switch (rnd_below(20)) {
			case 0:
				/* Stop or unmerge all for a while, then on again. */
				if (chance(500)) {
					knob("run", 0, 0);
				} else {
					knob("run", 2, 0);
					/* Only now, with no KSM page, may these change. */
					knob("max_page_sharing",
					     share_vals[rnd_below(5)], 1);
					knob("merge_across_nodes", chance(500), 1);
				}
				run_back = now() + 0.3 + rnd_below(2000) / 1000.0;
				break;
			case 1:
			case 2:
				knob("pages_to_scan", scan_vals[rnd_below(6)], 0);
				break;
			case 3:
			case 4:
				knob("sleep_millisecs", sleep_vals[rnd_below(7)], 0);
				break;
			case 5:
			case 6:
				knob("use_zero_pages", chance(500), 0);
				break;
			case 7:
			case 8:
				knob("smart_scan", chance(500), 0);
				break;
			case 9:
			case 10:
				knob("max_page_sharing", share_vals[rnd_below(5)], 1);
				break;
			case 11:
			case 12:
				knob("merge_across_nodes", chance(500), 1);
				break;
			case 13:
				knob("stable_node_chains_prune_millisecs",
				     chance(500) ? 10 : 2000, 0);
				break;
			default:
				/* Mostly, ksmd runs flat out. */
				knob("pages_to_scan", 20000, 0);
				knob("sleep_millisecs", 0, 0);
				break;
			}
			next_knob = now() + 0.2 + rnd_below(2500) / 1000.0;
		}
		if (enabled(OP_COMPACT) && now() >= next_compact) {
			if (!write_file("/proc/sys/vm/compact_memory", "1"))
				stat_add(&S->ops[OP_COMPACT], 1);
			else
				stat_add(&S->refused[OP_COMPACT], 1);
			next_compact = now() + 3 + rnd_below(10);
		}
		usleep(100000);
	}
	sample(&last);
	exit(0);
}

/* ---- setup and teardown ------------------------------------------------------ */

static int zram_id(void)
{
	return (int)read_long("/sys/class/zram-control/hot_add");
}

static int zram_size(int id, long mib)
{
	char path[96], val[32];

	snprintf(path, sizeof(path), "/sys/block/zram%d/comp_algorithm", id);
	if (write_file(path, "lzo-rle"))
		write_file(path, "lzo");
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", id);
	snprintf(val, sizeof(val), "%ldM", mib);
	return write_file(path, val);
}

static void zram_drop(int id, int remove)
{
	char path[96], val[16];

	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", id);
	write_file(path, "1");
	if (!remove)
		return;
	snprintf(val, sizeof(val), "%d", id);
	write_file("/sys/class/zram-control/hot_remove", val);
}

/* mkswap: a version 1 swap header, as mm/swapfile.c reads it. */
static int mkswap(const char *dev, long bytes)
{
	unsigned char *h = calloc(1, ps);
	u32 v[3] = { 1, bytes / ps - 1, 0 };
	int fd = open(dev, O_WRONLY), ok;

	if (fd < 0 || !h)
		return -1;
	memcpy(h + 1024, v, sizeof(v));
	memcpy(h + ps - 10, "SWAPSPACE2", 10);
	ok = pwrite(fd, h, ps, 0) == ps && !fsync(fd);
	close(fd);
	free(h);
	return ok ? 0 : -1;
}

static int swap_active(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 1;
}

static struct {
	int swap_id, dio_id, cg_made, finj;
	char cg[128], cg_procs[160];
	long saved[8];
} env = { .swap_id = -1, .dio_id = -1 };

static const char *const saved_knobs[] = {
	"pages_to_scan", "sleep_millisecs", "use_zero_pages", "smart_scan",
	"max_page_sharing", "merge_across_nodes", "run",
};

static void setup_swap(long mib)
{
	char dev[32];

	if (swap_active()) {
		say("ksm_stress: swap already on, using it");
		return;
	}
	if (access("/sys/block/zram0", F_OK) || read_long("/sys/block/zram0/disksize") > 0)
		env.swap_id = zram_id();
	else
		env.swap_id = 0;
	if (env.swap_id < 0 || zram_size(env.swap_id, mib)) {
		say("ksm_stress: no zram for swap: running without swap");
		env.swap_id = -1;
		return;
	}
	snprintf(dev, sizeof(dev), "/dev/zram%d", env.swap_id);
	if (mkswap(dev, mib << 20) || swapon(dev, 0)) {
		say("ksm_stress: swapon %s: %s: running without swap", dev, strerror(errno));
		zram_drop(env.swap_id, env.swap_id != 0);
		env.swap_id = -1;
		return;
	}
	say("ksm_stress: swap on %s, %ld MiB", dev, mib);
}

static void setup_dio(void)
{
	char dev[32];
	long mib = (2L * cfg.nprocs * SLOTS * ps >> 20) + 1;

	env.dio_id = zram_id();
	if (env.dio_id < 0 || zram_size(env.dio_id, mib)) {
		say("ksm_stress: no second zram device: no O_DIRECT");
		env.dio_id = -1;
		return;
	}
	snprintf(dev, sizeof(dev), "/dev/zram%d", env.dio_id);
	dio_fd = open(dev, O_RDWR | O_DIRECT);
	if (dio_fd < 0)
		say("ksm_stress: open %s O_DIRECT: %s: no O_DIRECT", dev, strerror(errno));
}

static void setup_memcg(long limit_mib)
{
	char path[200];

	if (limit_mib <= 0)
		return;
	if (access("/sys/fs/cgroup/cgroup.subtree_control", F_OK)) {
		say("ksm_stress: no cgroup v2 at /sys/fs/cgroup: no memcg limit");
		return;
	}
	write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
	snprintf(env.cg, sizeof(env.cg), "/sys/fs/cgroup/ksm_stress.%d", getpid());
	if (mkdir(env.cg, 0755)) {
		say("ksm_stress: mkdir %s: %s: no memcg limit", env.cg, strerror(errno));
		return;
	}
	env.cg_made = 1;
	/*
	 * Reclaim (to swap) above memory.high; memory.max, higher, is a
	 * backstop: hitting it under TCG can end in a memcg OOM kill even
	 * with swap to spare, and the OOM report would read as a splat.
	 */
	snprintf(path, sizeof(path), "%s/memory.max", env.cg);
	if (write_long(path, (limit_mib + limit_mib / 2) << 20)) {
		say("ksm_stress: %s: no memory controller: no memcg limit", path);
		return;
	}
	snprintf(path, sizeof(path), "%s/memory.high", env.cg);
	write_long(path, limit_mib << 20);
	snprintf(env.cg_procs, sizeof(env.cg_procs), "%s/cgroup.procs", env.cg);
	say("ksm_stress: workers in %s, memory.high %ld MiB, memory.max %ld MiB",
	    env.cg, limit_mib, limit_mib + limit_mib / 2);
}

#define FI "/sys/kernel/debug/"

/* Fail ksmd's allocations now and then, only ksmd's (task-filter). */
static void setup_finj(int kpid)
{
	static const char *const dirs[] = { "failslab", "fail_page_alloc" };
	char path[128], dir[64];
	unsigned int k;

	if (!cfg.finj || kpid <= 0 || access(FI "failslab", F_OK)) {
		if (cfg.finj > 0)
			say("ksm_stress: no fault injection in this kernel");
		return;
	}
	for (k = 0; k < 2; k++) {
		snprintf(dir, sizeof(dir), FI "%s/", dirs[k]);
#define FSET(f, v) (snprintf(path, sizeof(path), "%s%s", dir, f), write_file(path, v))
		FSET("verbose", "0");
		FSET("task-filter", "Y");
		FSET("ignore-gfp-wait", "N");
		/* Rarely: 6.12's ksmd drops its batch when an allocation fails. */
		FSET("interval", "20");
		FSET("times", "-1");
		FSET("space", "0");
		FSET("min-order", "0");
		FSET("probability", "5");
	}
	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", kpid);
	if (write_file(path, "1")) {
		say("ksm_stress: %s: fault injection off", path);
		return;
	}
	env.finj = kpid;
	say("ksm_stress: fault injection on ksmd (pid %d): 1 in 400 slab and page allocations fail",
	    kpid);
}

static void stop_finj(void)
{
	char path[64];

	if (!env.finj)
		return;
	write_file(FI "failslab/probability", "0");
	write_file(FI "fail_page_alloc/probability", "0");
	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", env.finj);
	write_file(path, "0");
}

static void teardown(void)
{
	char dev[32];
	unsigned int k;
	int i;

	stop_finj();
	if (dio_fd >= 0)
		close(dio_fd);
	if (env.dio_id >= 0)
		zram_drop(env.dio_id, 1);
	if (env.swap_id >= 0) {
		snprintf(dev, sizeof(dev), "/dev/zram%d", env.swap_id);
		if (swapoff(dev))
			say("ksm_stress: swapoff %s: %s", dev, strerror(errno));
		else
			zram_drop(env.swap_id, env.swap_id != 0);
	}
	/* The memcg goes once its last task is reaped: bounded retries. */
	for (i = 0; env.cg_made && i < 50 && rmdir(env.cg); i++)
		usleep(100000);
	for (k = 0; k < ARRAY_SIZE(saved_knobs); k++)
		if (env.saved[k] >= 0)
			ksm_write(saved_knobs[k], env.saved[k]);
}

/* ---- the final checks -------------------------------------------------------- */

static const char *const zero_counters[] = {
	"pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
	"ksm_zero_pages", "stable_node_chains", "stable_node_dups",
	"general_profit",
};

#define NZC ARRAY_SIZE(zero_counters)

/*
 * Stock 6.12 (the baseline; its rmap_item cache names it): fork copies
 * mm->ksm_zero_pages before it takes the parent's mmap lock and adds the
 * copy to ksm_zero_pages, so an unmerge racing with fork (run=2) leaves
 * the global count too high for good.  There, that drift is reported,
 * not failed; any other kernel must come back to 0.
 */
static int stock_612(void)
{
	char line[256];
	int found = !access("/sys/kernel/slab/ksm_rmap_item", F_OK);
	FILE *f = found ? NULL : fopen("/proc/slabinfo", "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = !strncmp(line, "ksm_rmap_item ", 14);
	if (f)
		fclose(f);
	return found;
}

/* The ksm_zero_pages drift stock 6.12 leaves (see stock_612()). */
static int excused(int k, const long *v)
{
	return !strcmp(zero_counters[k], "ksm_zero_pages") ||
	       (!strcmp(zero_counters[k], "general_profit") &&
		v[k] == ksm_read("ksm_zero_pages") * ps);
}

/* The report of stock 6.12's drift (see stock_612()), in one piece. */
#define ZERO_DRIFT_LOG "ksm_stress: after run=2 with no process left, %s is %ld: stock 6.12's fork race on ksm_zero_pages, not counted"

/* run=2 with no process left: every counter back to 0, within a bound. */
static int check_counters(void)
{
	int k, bad, lenient = stock_612();
	double t0 = now();
	char path[96];
	long v[NZC];

	for (;;) {
		knob("run", 2, 0);
		bad = 0;
		for (k = 0; k < (int)NZC; k++) {
			snprintf(path, sizeof(path), KSM "%s", zero_counters[k]);
			v[k] = access(path, F_OK) ? 0 : ksm_read(zero_counters[k]);
			bad |= v[k] && !(lenient && excused(k, v));
		}
		if (!bad || now() - t0 > 60)
			break;
		usleep(500000);
	}
	for (k = 0; k < (int)NZC; k++) {
		if (!v[k])
			continue;
		if (lenient && excused(k, v))
			say(ZERO_DRIFT_LOG, zero_counters[k], v[k]);
		else
			fail("after run=2 with no process left, %s is %ld (want 0)",
			     zero_counters[k], v[k]);
	}
	if (!bad)
		say("ksm_stress: KSM counters back to 0 after run=2 (%.1f s)", now() - t0);
	return bad ? -1 : 0;
}

/* Why slab caches go unchecked, in one piece to grep for. */
#define SLAB_MERGED_LOG "ksm_stress: slab cache %s is merged into %s: not counted (boot with slab_nomerge)"
#define NO_SLABS_LOG "ksm_stress: no slab statistics (CONFIG_SLUB_DEBUG off?): KSM's slab caches not checked"

/* Objects in KSM's slab caches, which must be empty by now. */
static int check_slabs(void)
{
	char path[300], link[256], line[512], name[64];
	long objs, bad = 0, seen = 0, merged = 0;
	struct dirent *d;
	double t0;
	DIR *dir;
	FILE *f;
	ssize_t n;

	dir = opendir("/sys/kernel/slab");
	while (dir && (d = readdir(dir))) {
		if (strncmp(d->d_name, "ksm", 3))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s", d->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			say(SLAB_MERGED_LOG, d->d_name,
			    strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
			merged++;
			continue;
		}
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/objects", d->d_name);
		if (access(path, F_OK))
			continue;
		/* Freed objects may wait in per-CPU slabs and RCU: shrink, retry. */
		for (t0 = now();; usleep(200000)) {
			snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink",
				 d->d_name);
			write_file(path, "1");
			snprintf(path, sizeof(path), "/sys/kernel/slab/%s/objects",
				 d->d_name);
			objs = read_long(path);
			if (objs <= 0 || now() - t0 > 20)
				break;
		}
		seen++;
		say("ksm_stress: slab %s: %ld objects", d->d_name, objs);
		if (objs > 0) {
			fail("slab cache %s still holds %ld objects", d->d_name, objs);
			bad++;
		}
	}
	if (dir)
		closedir(dir);
	/* slabinfo names a merged cache after one of its members: no use. */
	if (seen || merged)
		return bad ? -1 : 0;
	f = fopen("/proc/slabinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "ksm", 3) || sscanf(line, "%63s %ld", name, &objs) != 2)
			continue;
		seen++;
		say("ksm_stress: slabinfo %s: %ld active objects", name, objs);
		if (objs > 0) {
			fail("slab cache %s still holds %ld objects", name, objs);
			bad++;
		}
	}
	if (f)
		fclose(f);
	if (!seen)
		say(NO_SLABS_LOG);
	return bad ? -1 : 0;
}

/* kmemleak, if the kernel has it: a leak that involves KSM fails the run. */
static int check_kmemleak(void)
{
	const char *path = "/sys/kernel/debug/kmemleak";
	char line[512], block[4096];
	long leaks = 0, ksm = 0, used = 0;
	int k, in = 0;
	FILE *f;

	if (access(path, F_OK)) {
		say("ksm_stress: no kmemleak in this kernel: not checked");
		return 0;
	}
	for (k = 0; k < 2; k++)
		if (write_file(path, "scan")) {
			say("ksm_stress: kmemleak scan refused (disabled?): not checked");
			return 0;
		}
	f = fopen(path, "r");
	if (!f)
		return 0;
	block[0] = 0;
	for (;;) {
		char *got = fgets(line, sizeof(line), f);

		if (!got || !strncmp(line, "unreferenced object", 19)) {
			if (in && strstr(block, "ksm")) {
				if (ksm++ < 5)
					say("ksm_stress: kmemleak blames KSM:\n%s", block);
			}
			if (!got)
				break;
			in = 1;
			leaks++;
			used = 0;
			block[0] = 0;
		}
		k = strlen(line);
		if (in && used + k < (long)sizeof(block) - 1) {
			memcpy(block + used, line, k + 1);
			used += k;
		}
	}
	fclose(f);
	say("ksm_stress: kmemleak: %ld suspected leaks, %ld involving KSM", leaks, ksm);
	if (ksm)
		fail("kmemleak: %ld leaks involving KSM", ksm);
	return ksm ? -1 : 0;
}

/* SIGKILL whatever is still our child (orphans included), bounded. */
static void kill_children(void)
{
	char path[300], buf[512], *p;
	struct dirent *d;
	int round, ppid, st;
	DIR *dir;
	FILE *f;

	for (round = 0; round < 20; round++) {
		dir = opendir("/proc");
		while (dir && (d = readdir(dir))) {
			if (d->d_name[0] < '1' || d->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
			fclose(f);
			if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == getpid())
				kill(atoi(d->d_name), SIGKILL);
		}
		if (dir)
			closedir(dir);
		while (waitpid(-1, &st, WNOHANG) > 0)
			;
		if (waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD)
			return;
		usleep(200000);
	}
}

/* ---- main --------------------------------------------------------------------- */

static unsigned int parse_ops(const char *arg)
{
	char buf[256], *tok, *save;
	unsigned int mask = 0, bit;
	int op, neg;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",+:", &save); tok; tok = strtok_r(NULL, ",+:", &save)) {
		neg = *tok == '-';
		tok += neg;
		if (!strcmp(tok, "all")) {
			bit = (1U << NR_OPS) - 1;
		} else if (!strcmp(tok, "crash")) {
			bit = parse_ops(CRASH_OPS);
		} else {
			for (op = 0; op < NR_OPS; op++)
				if (!strcmp(tok, ops[op].name))
					break;
			if (op == NR_OPS) {
				fprintf(stderr, "ksm_stress: unknown operation '%s'\n", tok);
				exit(2);
			}
			bit = 1U << op;
		}
		mask = neg ? mask & ~bit : mask | bit;
	}
	return mask;
}

static void usage(void)
{
	int op;

	fprintf(stderr,
		"ksm_stress [-d seconds] [-s seed] [-n procs] [-m MiB each] [-p pause %%]\n"
		"           [-o ops] [-L memcg MiB] [-S swap MiB] [-F 0|1] [-P poisons] [-v]\n"
		"  defaults: -n 8 -m 8 -p 15 (-p: share of operations that sleep a while);\n"
		"  on a debug kernel -n 4 -m 2 -p 50\n"
		"  -o: comma- or +-separated, 'all' (default), 'crash' (%s),\n"
		"      '-name' drops one.  Operations:", CRASH_OPS);
	for (op = 0; op < NR_OPS; op++)
		fprintf(stderr, " %s", ops[op].name);
	fprintf(stderr, "\n"
		"  -L 0: no memcg; -F: fault injection on ksmd (default: if the kernel has it)\n"
		"  -P: most pages hwpoisoned (default 8); -v: say why the kernel refused\n");
	exit(2);
}

/* The closing line, in one piece to grep for. */
#define SUMMARY_LOG "ksm_stress: seed=%llu duration=%.0fs ops=%ld forks=%ld respawns=%ld merges: max pages_sharing=%ld, increments %ld, max pages_shared=%ld, max ksm_zero_pages=%ld; cow_ksm=%ld; hwpoison %ld (%ld on KSM pages, SIGBUS %ld); pages verified=%ld; mismatches=%ld; failures=%ld: %s"

static void summary(double secs, long cow, int clean)
{
	char buf[1024];
	int op, n = 0;
	long total = 0;

	for (op = 0; op <= OP_PAUSE; op++) {
		if (!S->ops[op] && !S->refused[op])
			continue;
		if (op < NR_OPS)
			total += S->ops[op];
		n += snprintf(buf + n, sizeof(buf) - n, " %s=%ld", ops[op].name,
			      S->ops[op]);
		if (S->refused[op])
			n += snprintf(buf + n, sizeof(buf) - n, "(+%ld refused)",
				      S->refused[op]);
		if (n >= (int)sizeof(buf) - 40)
			break;
	}
	say("ksm_stress: ops:%s", buf);
	say(SUMMARY_LOG, cfg.seed, secs, total, S->forks, S->respawns, S->max_sharing,
	    S->sharing_incr, S->max_shared, S->max_zero, cow, S->poisoned,
	    S->poison_ksm, S->poison_sigbus, S->verified, S->mismatches, S->failures,
	    clean ? "PASS" : "FAIL");
}

/* The line every 10 s, in one piece to grep for. */
#define PROGRESS_LOG "ksm_stress: %4.0fs ops %ld verified %ld sharing %ld shared %ld full_scans %ld swap %ld MiB mismatches %ld failures %ld"

int main(int argc, char **argv)
{
	pid_t pids[MAX_PROCS] = { 0 }, ctl, pid;
	int gens[MAX_PROCS] = { 0 }, opt, k, st, kpid, left;
	double t0, next_report, t_end, t_moved;
	long cow0, cow, v, last_ops = -1;
	unsigned int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	cfg.seed = (unsigned long long)time(NULL) ^ (unsigned long long)getpid() << 16;
	cfg.enabled = (1U << NR_OPS) - 1;
	snprintf(cfg.ops_arg, sizeof(cfg.ops_arg), "all");
	while ((opt = getopt(argc, argv, "d:s:n:m:o:L:S:F:P:p:vh")) != -1) {
		switch (opt) {
		case 'd':
			cfg.duration = atoi(optarg);
			break;
		case 's':
			cfg.seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			cfg.nprocs = atoi(optarg);
			break;
		case 'm':
			cfg.mib = atol(optarg);
			break;
		case 'o':
			cfg.enabled = parse_ops(optarg);
			snprintf(cfg.ops_arg, sizeof(cfg.ops_arg), "%s", optarg);
			break;
		case 'L':
			cfg.limit_mib = atol(optarg);
			break;
		case 'S':
			cfg.swap_mib = atol(optarg);
			break;
		case 'F':
			cfg.finj = atoi(optarg);
			break;
		case 'P':
			cfg.poison_max = atoi(optarg);
			break;
		case 'p':
			cfg.pause_pct = atoi(optarg);
			break;
		case 'v':
			cfg.verbose = 1;
			break;
		default:
			usage();
		}
	}
	/* A debug kernel (lockdep, kmemleak) under TCG: a smaller shape. */
	k = !access("/proc/lockdep", F_OK) || !access("/sys/kernel/debug/kmemleak", F_OK);
	if (cfg.nprocs < 0)
		cfg.nprocs = k ? 4 : 8;
	if (cfg.mib < 0)
		cfg.mib = k ? 2 : 8;
	/* There ksmd is slow too: leave it more of the CPU. */
	if (cfg.pause_pct < 0)
		cfg.pause_pct = k ? 50 : 15;
	if (cfg.pause_pct > 95)
		cfg.pause_pct = 95;
	if (cfg.nprocs < 1 || cfg.nprocs > MAX_PROCS || cfg.mib < 1 || cfg.duration < 1)
		usage();
	ps = sysconf(_SC_PAGESIZE);
	if (access(KSM "run", F_OK)) {
		say("ksm_stress: no KSM in this kernel");
		return 4;
	}
	/* Footprint: each worker's memory and its shadow, plus a margin. */
	if (cfg.limit_mib < 0)
		cfg.limit_mib = cfg.nprocs * cfg.mib * 2 * 5 / 8 + 8;
	if (cfg.swap_mib < 0)
		cfg.swap_mib = cfg.nprocs * cfg.mib * 4 + 64;
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	wbuf = map_anon((MAX_RUN + 1) * ps);
	rbuf = map_anon((MAX_RUN + 1) * ps);
	alt = map_anon(2 * ps);
	if (S == MAP_FAILED)
		return 2;
	S->poison_budget = cfg.poison_max;
	if (!access("/sys/devices/system/node/node1", F_OK))
		nnodes = 2;
	/* Orphans of dead workers are ours to reap: none outlives the run. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);

	say("ksm_stress: seed=%llu duration=%ds procs=%d x %ld MiB ops=%s pauses %d%% (kernel %s)",
	    cfg.seed, cfg.duration, cfg.nprocs, cfg.mib, cfg.ops_arg, cfg.pause_pct,
	    access("/sys/kernel/debug/kmemleak", F_OK) ? "without kmemleak" : "with kmemleak");
	for (i = 0; i < ARRAY_SIZE(saved_knobs); i++)
		env.saved[i] = ksm_read(saved_knobs[i]);
	ksm_write("run", 2);
	setup_swap(cfg.swap_mib);
	if (enabled(OP_ODIRECT))
		setup_dio();
	setup_memcg(cfg.limit_mib);
	kpid = ksmd_pid();
	ksm_write("pages_to_scan", 10000);
	ksm_write("sleep_millisecs", 0);
	if (ksm_write("run", 1))
		fail("cannot start ksmd: %s", strerror(errno));
	setup_finj(kpid);
	cow0 = vmstat_read("cow_ksm");

	t_start = now();
	t0 = t_start;
	t_end = t0 + cfg.duration;
	next_report = t0 + 10;
	t_moved = t0;
	ctl = fork();
	if (!ctl)
		controller();
	for (k = 0; k < cfg.nprocs; k++) {
		pids[k] = fork();
		if (!pids[k])
			worker(k, 0, env.cg_procs[0] ? env.cg_procs : NULL);
	}
	while (now() < t_end) {
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (k = 0; k < cfg.nprocs && pids[k] != pid; k++)
				;
			if (pid == ctl) {
				fail("the controller ended early (status %#x)", st);
				ctl = 0;
			}
			if (k == cfg.nprocs)
				continue;	/* an orphan */
			if (WIFSIGNALED(st))
				fail("worker %d (pid %d) killed by signal %d (%s)", k, pid,
				     WTERMSIG(st), strsignal(WTERMSIG(st)));
			else if (WEXITSTATUS(st) > 1)
				fail("worker %d (pid %d) exited %d", k, pid, WEXITSTATUS(st));
			/* Exited (the exit operation, or after a fault): a new one. */
			gens[k]++;
			pids[k] = fork();
			if (!pids[k])
				worker(k, gens[k], env.cg_procs[0] ? env.cg_procs : NULL);
			stat_add(&S->respawns, 1);
		}
		if (now() >= next_report) {
			for (v = 0, k = 0; k < NR_OPS; k++)
				v += S->ops[k];
			if (v != last_ops)
				t_moved = now();
			last_ops = v;
			say(PROGRESS_LOG, now() - t0, v,
			    S->verified, ksm_read("pages_sharing"), ksm_read("pages_shared"),
			    ksm_read("full_scans"),
			    (meminfo_kb("SwapTotal") - meminfo_kb("SwapFree")) >> 10,
			    S->mismatches, S->failures);
			next_report += 10;
			/* Nobody got anything done for a minute: a hang. */
			if (now() - t_moved > 60) {
				fail("no operation completed for %.0f s: stopping",
				     now() - t_moved);
				break;
			}
		}
		usleep(100000);
	}

	/* Stop: every process checks all its pages and exits. */
	__atomic_store_n(&S->stop, 1, __ATOMIC_RELAXED);
	for (left = 1, t0 = now(); left && now() - t0 < 300;) {
		pid = waitpid(-1, &st, WNOHANG);
		if (pid < 0 && errno == ECHILD) {
			left = 0;
			break;
		}
		if (pid <= 0) {
			usleep(50000);
			continue;
		}
		for (k = 0; k < cfg.nprocs && pids[k] != pid; k++)
			;
		if (k < cfg.nprocs) {
			pids[k] = 0;
			if (WIFSIGNALED(st))
				fail("worker %d (pid %d) killed by signal %d (%s)", k, pid,
				     WTERMSIG(st), strsignal(WTERMSIG(st)));
			else if (WEXITSTATUS(st) > 1)
				fail("worker %d (pid %d) exited %d", k, pid, WEXITSTATUS(st));
		} else if (pid == ctl && (!WIFEXITED(st) || WEXITSTATUS(st))) {
			fail("the controller ended with status %#x", st);
		}
	}
	if (left) {
		fail("processes still there %.0f s after the stop: killing them", now() - t0);
		for (k = 0; k < cfg.nprocs; k++)
			if (pids[k]) {
				char path[64], buf[2048];
				int fd;
				ssize_t n;

				snprintf(path, sizeof(path), "/proc/%d/stack", pids[k]);
				fd = open(path, O_RDONLY);
				n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
				if (fd >= 0)
					close(fd);
				buf[n > 0 ? n : 0] = 0;
				say("ksm_stress: worker %d (pid %d) stack:\n%s", k, pids[k], buf);
				kill(pids[k], SIGKILL);
			}
		kill_children();
	}
	stop_finj();
	if (env.cg_made) {
		char path[200], line[128];
		FILE *f;

		snprintf(path, sizeof(path), "%s/memory.events", env.cg);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "oom_kill ", 9) && atol(line + 9))
				fail("the memcg OOM-killed %ld processes", atol(line + 9));
		if (f)
			fclose(f);
	}
	cow = vmstat_read("cow_ksm") - cow0;
	v = ksm_read("pages_sharing");
	if (v > S->max_sharing)
		S->max_sharing = v;
	check_counters();
	check_slabs();
	check_kmemleak();
	teardown();
	summary(now() - t_start, cow, !S->failures && !S->mismatches);
	return S->failures || S->mismatches ? 1 : 0;
}
