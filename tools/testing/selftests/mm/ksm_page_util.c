// SPDX-License-Identifier: GPL-2.0
/*
 * Page-level helpers of our KSM selftests: page contents, the frames and
 * swap entries behind them, per-process KSM counters, knobs to restore,
 * a memory cgroup of our own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksm_page_util.h"

void ksm_knobs_save(struct ksm_knobs *k)
{
	k->run = ksm_get("run");
	k->pages_to_scan = ksm_get("pages_to_scan");
	k->sleep_millisecs = ksm_get("sleep_millisecs");
	k->use_zero_pages = ksm_get("use_zero_pages");
}

/* run last: ksmd should not scan a pass with half-restored knobs. */
void ksm_knobs_restore(const struct ksm_knobs *k)
{
	ksm_set("pages_to_scan", k->pages_to_scan);
	ksm_set("sleep_millisecs", k->sleep_millisecs);
	ksm_set("use_zero_pages", k->use_zero_pages);
	ksm_set("run", k->run);
}

/* Save the knobs, unmerge everything, then scan flat out: 0 or -1. */
int ksm_flat_out(struct ksm_knobs *knobs)
{
	ksm_knobs_save(knobs);
	if (ksm_set("run", 2) || ksm_set("pages_to_scan", 1000) ||
	    ksm_set("sleep_millisecs", 0) || ksm_set("use_zero_pages", 0) ||
	    ksm_set("run", 1))
		return -1;
	return 0;
}

/* Why KSM tests cannot run here, or NULL if they can. */
const char *ksm_unfit(void)
{
	if (access(KSM_DIR "run", F_OK))
		return "no KSM in this kernel";
	if (geteuid())
		return "needs root";
	return NULL;
}

long page_size(void)
{
	static long psize;

	if (!psize)
		psize = sysconf(_SC_PAGESIZE);
	return psize;
}

/* Private anonymous pages, small ones: THPs get tests of their own. */
char *map_anon(int pages)
{
	char *p = mmap(NULL, pages * page_size(), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, pages * page_size(), MADV_NOHUGEPAGE);
	return p;
}

/*
 * Every word of the page names the seed and its own offset: pages of
 * different seeds never compare equal, and no page is all zeroes.
 */
void fill_page(char *page, unsigned int seed)
{
	uint64_t *w = (uint64_t *)page;
	size_t i;

	for (i = 0; i < page_size() / sizeof(*w); i++)
		w[i] = (uint64_t)(seed + 1) << 32 | i;
}

bool page_holds(const char *page, unsigned int seed)
{
	const uint64_t *w = (const uint64_t *)page;
	size_t i;

	for (i = 0; i < page_size() / sizeof(*w); i++)
		if (w[i] != ((uint64_t)(seed + 1) << 32 | i))
			return false;
	return true;
}

bool page_zero(const char *page)
{
	const uint64_t *w = (const uint64_t *)page;
	size_t i;

	for (i = 0; i < page_size() / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* How many of @pages pages hold what fill_page(page i, @seed + i) wrote. */
int pages_holding(char *p, int pages, unsigned int seed)
{
	int i, n = 0;

	for (i = 0; i < pages; i++)
		n += page_holds(p + i * page_size(), seed + i);
	return n;
}

/* The pagemap entries of @pages pages from @addr in one read: 0 or -1. */
int pagemap_read(void *addr, int pages, uint64_t *entries)
{
	off_t off = (unsigned long)addr / page_size() * sizeof(*entries);
	size_t len = pages * sizeof(*entries);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, entries, len, off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* The frame behind a virtual page (root reads real PFNs), or 0. */
unsigned long long frame_of(void *addr)
{
	uint64_t e;

	if (pagemap_read(addr, 1, &e) || !(e & PM_PRESENT))
		return 0;
	return e & PM_PFN_MASK;
}

/* How many page pairs a[i], b[i] map one and the same frame. */
int same_frames(char *a, char *b, int pages)
{
	uint64_t *ea = calloc(pages, sizeof(*ea));
	uint64_t *eb = calloc(pages, sizeof(*eb));
	int i, n = 0;

	if (ea && eb && !pagemap_read(a, pages, ea) &&
	    !pagemap_read(b, pages, eb))
		for (i = 0; i < pages; i++)
			n += (ea[i] & PM_PRESENT) && (eb[i] & PM_PRESENT) &&
			     (ea[i] & PM_PFN_MASK) == (eb[i] & PM_PFN_MASK);
	free(ea);
	free(eb);
	return n;
}

/* How many of @pages pages from @p are out on swap; -1 on error. */
int swapped_pages(char *p, int pages)
{
	uint64_t *e = calloc(pages, sizeof(*e));
	int i, n = -1;

	if (e && !pagemap_read(p, pages, e))
		for (n = 0, i = 0; i < pages; i++)
			n += !!(e[i] & PM_SWAP);
	free(e);
	return n;
}

long proc_merging_pages(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages", pid);
	return read_long(path);
}

/* One line of /proc/@pid/ksm_stat, e.g. "ksm_rmap_items", or -1. */
long proc_ksm_stat(pid_t pid, const char *key)
{
	char path[64], line[128], fmt[64];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	snprintf(fmt, sizeof(fmt), "%s %%ld", key);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Wait for @n more full scans of ksmd; false after @limit seconds. */
bool wait_scans(long n, double limit)
{
	long want = ksm_get("full_scans") + n;

	return WAIT_UNTIL(ksm_get("full_scans") >= want, limit);
}

/* A "Field:  N kB" line of the smaps entry of the VMA holding @addr. */
long smaps_kb(void *addr, const char *field)
{
	unsigned long a = (unsigned long)addr, start, end;
	size_t flen = strlen(field);
	char line[512];
	bool inside = false;
	long kb = -1;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = start <= a && a < end;
			continue;
		}
		if (inside && !strncmp(line, field, flen) && line[flen] == ':') {
			kb = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* Write a string to a file in one write(): 0 or -errno. */
int write_str(const char *path, const char *s)
{
	ssize_t len = strlen(s), n;
	int fd, err = 0;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0)
		err = -errno;
	else if (n != len)
		err = -EIO;
	close(fd);
	return err;
}

/* A knob of /sys/kernel/mm/ksm as text, without its newline: 0 or -errno. */
int ksm_knob_read(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

/* Write a string to a knob of /sys/kernel/mm/ksm in one write(). */
int ksm_knob_write(const char *name, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	return write_str(path, val);
}

/*
 * Into a memory cgroup CGROOT @name of our own, with the memory controller
 * turned on for the children of the root; @memory_was_on notes whether it
 * was on already.  0, or the MEMCG_* step that failed.
 */
int memcg_enter(const char *name, bool *memory_was_on)
{
	char ctl[256] = "", dir[128], path[160], pid[32];
	int fd, n;

	fd = open(CGROOT "cgroup.subtree_control", O_RDONLY);
	if (fd < 0)
		return MEMCG_NO_V2;
	n = read(fd, ctl, sizeof(ctl) - 1);
	ctl[n > 0 ? n : 0] = '\0';
	close(fd);
	*memory_was_on = !!strstr(ctl, "memory");
	if (!*memory_was_on &&
	    write_str(CGROOT "cgroup.subtree_control", "+memory"))
		return MEMCG_NO_CTRL;
	snprintf(dir, sizeof(dir), CGROOT "%s/", name);
	if (mkdir(dir, 0755) && errno != EEXIST)
		return MEMCG_NO_DIR;
	snprintf(path, sizeof(path), "%scgroup.procs", dir);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (write_str(path, pid))
		return MEMCG_NO_MOVE;
	return 0;
}

/* Back to the root cgroup, CGROOT @name gone, the controller as it was. */
void memcg_leave(const char *name, bool memory_was_on)
{
	char dir[128], pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	write_str(CGROOT "cgroup.procs", pid);
	snprintf(dir, sizeof(dir), CGROOT "%s/", name);
	rmdir(dir);
	if (!memory_was_on)
		write_str(CGROOT "cgroup.subtree_control", "-memory");
}
