// SPDX-License-Identifier: GPL-2.0
/*
 * KSM's user interface as stock 6.12 defines it, knob by knob and
 * counter by counter.
 *
 * knobs: every file of /sys/kernel/mm/ksm reads its 6.12 default, takes
 * the values 6.12 takes (the least and the greatest), and refuses the ones
 * just outside with 6.12's errno, the value read back unchanged.  (Bad
 * strings of every kind are ksm_fuzz_test's: here only the boundaries.)
 *
 * stats: processes holding known numbers of duplicate, zero and unique
 * pages, with and without use_zero_pages, merged and then frozen (run=0):
 * the global counters, general_profit, /proc/<pid>/ksm_stat and
 * ksm_merging_pages, the KSM: lines of smaps and smaps_rollup, VmFlags,
 * KPF_KSM in /proc/kpageflags and cow_ksm in /proc/vmstat must all tell
 * the same story, to the page; scanned on, pages_scanned, pages_volatile
 * and pages_skipped move as 6.12 moves them.
 *
 * Then: the mg flag of every VMA under madvise() and PR_SET_MEMORY_MERGE
 * (and ksm_stat's ksm_merge_any and ksm_mergeable where the kernel has
 * them), full_scans moving only while ksmd runs and has something
 * registered, and ksm_swpin_copy counting the copies a swap-in of a KSM
 * page makes.
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
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define WAIT_S 60

/*
 * The profits charge a fixed number of bytes of KSM's own metadata per
 * tracked page: sizeof(struct ksm_rmap_item), 64 on 64-bit, in 6.12; an
 * engine that spends less may charge less, never more, and must charge
 * the same in general_profit and in every ksm_process_profit.
 */
#define RMAP_ITEM_SIZE 64

/* include/uapi/linux/kernel-page-flags.h */
#define KPF_ANON	12
#define KPF_KSM		21
#define KPF_ZERO_PAGE	24

#define ZRAM "/sys/block/zram0/"
#define CG_NAME "ksm_conformance"
#define CG CGROOT CG_NAME "/"

/* --- sysfs knobs, as strings ------------------------------------------ */

static const char * const knob_names[] = {
	"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes",
	"use_zero_pages", "max_page_sharing",
	"stable_node_chains_prune_millisecs", "smart_scan", "advisor_mode",
	"advisor_max_cpu", "advisor_min_pages_to_scan",
	"advisor_max_pages_to_scan", "advisor_target_scan_time",
};

#define NKNOBS ARRAY_SIZE(knob_names)

/* What to write to advisor_mode to get the mode @shown shows. */
static const char *advisor_mode_of(const char *shown)
{
	return strstr(shown, "[scan-time]") ? "scan-time" : "none";
}

/* Every knob as it reads; a knob that is not there reads "". */
struct knob_state {
	char v[NKNOBS][64];
};

static void knobs_save(struct knob_state *s)
{
	unsigned int i;

	for (i = 0; i < NKNOBS; i++)
		if (ksm_knob_read(knob_names[i], s->v[i], sizeof(s->v[i])))
			s->v[i][0] = '\0';
}

/*
 * Put every knob back.  Nothing of ours is merged by now, but run=2 makes
 * sure the layout knobs can change; the advisor goes to none first (only
 * then is pages_to_scan writable) and back to what it was last but run.
 */
static void knobs_restore(const struct knob_state *s)
{
	unsigned int i;

	ksm_knob_write("run", "2");
	ksm_knob_write("advisor_mode", "none");
	for (i = 0; i < NKNOBS; i++) {
		const char *name = knob_names[i];

		if (!s->v[i][0] || !strcmp(name, "run") ||
		    !strcmp(name, "advisor_mode"))
			continue;
		ksm_knob_write(name, s->v[i]);
	}
	for (i = 0; i < NKNOBS; i++) {
		if (!strcmp(knob_names[i], "advisor_mode") && s->v[i][0])
			ksm_knob_write("advisor_mode", advisor_mode_of(s->v[i]));
	}
	for (i = 0; i < NKNOBS; i++) {
		if (!strcmp(knob_names[i], "run") && s->v[i][0])
			ksm_knob_write("run", s->v[i]);
	}
}

/* --- /proc readers ------------------------------------------------------ */

/* A counter of /proc/vmstat, or -1 if it has none of that name. */
static long vmstat_get(const char *key)
{
	char line[128], name[64];
	long v, found = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", name, &v) == 2 &&
		    !strcmp(name, key)) {
			found = v;
			break;
		}
	fclose(f);
	return found;
}

/* /proc/<pid>/ksm_stat, as 6.12 prints it and as later kernels add to it. */
struct ksm_stat {
	long rmap_items, zero_pages, merging_pages, process_profit;
	int merge_any, mergeable;	/* 1 yes, 0 no, -1 not printed */
	char odd[128];			/* the first line out of place */
};

/* "yes" 1, "no" 0, anything else -2. */
static int yes_no(const char *s)
{
	if (!strcmp(s, "yes"))
		return 1;
	if (!strcmp(s, "no"))
		return 0;
	return -2;
}

/*
 * 6.12 prints four lines, "name value", in this order; 6.13 and later
 * add "ksm_merge_any: yes|no" and "ksm_mergeable: yes|no" after them.
 * Any other line, or a line out of order, lands in ->odd.  0 or -1.
 */
static int ksm_stat_read(pid_t pid, struct ksm_stat *s)
{
	static const char * const keys[] = {
		"ksm_rmap_items", "ksm_zero_pages", "ksm_merging_pages",
		"ksm_process_profit",
	};
	long *vals[] = {
		&s->rmap_items, &s->zero_pages, &s->merging_pages,
		&s->process_profit,
	};
	char path[64], line[128], key[64], word[16];
	unsigned int n = 0;
	FILE *f;
	long v;

	memset(s, 0, sizeof(*s));
	s->merge_any = -1;
	s->mergeable = -1;
	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (n < ARRAY_SIZE(keys) &&
		    sscanf(line, "%63s %ld", key, &v) == 2 &&
		    !strcmp(key, keys[n])) {
			*vals[n++] = v;
		} else if (n == ARRAY_SIZE(keys) && s->merge_any == -1 &&
			   sscanf(line, "ksm_merge_any: %15s", word) == 1) {
			s->merge_any = yes_no(word);
		} else if (n == ARRAY_SIZE(keys) && s->merge_any != -1 &&
			   s->mergeable == -1 &&
			   sscanf(line, "ksm_mergeable: %15s", word) == 1) {
			s->mergeable = yes_no(word);
		} else if (!s->odd[0]) {
			snprintf(s->odd, sizeof(s->odd), "%s", line);
		}
	}
	fclose(f);
	if (n < ARRAY_SIZE(keys) && !s->odd[0])
		snprintf(s->odd, sizeof(s->odd), "(no %s line)", keys[n]);
	return 0;
}

/* Is @flag one of the words of a VmFlags: line? */
static bool has_vmflag(const char *line, const char *flag)
{
	size_t len = strlen(flag);
	const char *p = line + strlen("VmFlags:");

	while ((p = strstr(p, flag))) {
		if (p[-1] == ' ' && (p[len] == ' ' || p[len] == '\n' ||
				     !p[len]))
			return true;
		p += len;
	}
	return false;
}

/*
 * Walk /proc/@pid/smaps.  For the VMA holding @addr: the kB of @field
 * into *@kb and whether it has VmFlags mg into *@mg.  For every VMA:
 * whether its mg is what @want says (want_mg()), the mismatches counted
 * and the first one described in @why.  -1 if smaps cannot be read.
 */
enum mg_want { MG_ANY, MG_ONLY_ADDR, MG_IF_COMPATIBLE, MG_NONE };

/* Would 6.12's vma_ksm_compatible() take the VMA with these VmFlags? */
static bool ksm_compatible(const char *vmflags)
{
	static const char * const bad[] = {
		"sh", "ms", "pf", "io", "de", "ht", "mm", "dp",
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++)
		if (has_vmflag(vmflags, bad[i]))
			return false;
	return true;
}

static int smaps_walk(pid_t pid, unsigned long addr, const char *field,
		      long *kb, int *mg, enum mg_want want, char *why,
		      size_t whylen)
{
	unsigned long start = 0, end = 0;
	char path[64], line[512], head[512] = "";
	size_t flen = field ? strlen(field) : 0;
	int mismatches = 0;
	bool inside = false;
	FILE *f;

	if (kb)
		*kb = -1;
	if (mg)
		*mg = -1;
	if (why)
		why[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = start <= addr && addr < end;
			snprintf(head, sizeof(head), "%s", line);
			head[strcspn(head, "\n")] = '\0';
			continue;
		}
		if (inside && field && kb && !strncmp(line, field, flen) &&
		    line[flen] == ':')
			*kb = strtol(line + flen + 1, NULL, 10);
		if (strncmp(line, "VmFlags:", 8))
			continue;
		if (inside && mg)
			*mg = has_vmflag(line, "mg");
		if (want != MG_ANY && !strstr(head, "[vsyscall]")) {
			bool is = has_vmflag(line, "mg"), should;

			should = want == MG_ONLY_ADDR ? inside :
				 want == MG_IF_COMPATIBLE ? ksm_compatible(line) :
				 false;
			if (is != should && !mismatches++ && why) {
				line[strcspn(line, "\n")] = '\0';
				snprintf(why, whylen, "%s | %s", head, line);
			}
		}
	}
	fclose(f);
	return mismatches;
}

/* A "Field:  N kB" line of /proc/@pid/smaps_rollup, or -1. */
static long rollup_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			kb = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* The pagemap entry of @addr in @pid, or 0. */
static uint64_t pagemap_of(pid_t pid, unsigned long addr)
{
	char path[64];
	uint64_t e = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), addr / page_size() * sizeof(e)) !=
	    sizeof(e))
		e = 0;
	close(fd);
	return e;
}

/* The /proc/kpageflags word of the frame behind @addr in @pid; 0 or -1. */
static int kpageflags_of(pid_t pid, unsigned long addr, uint64_t *flags)
{
	uint64_t e = pagemap_of(pid, addr), pfn = e & PM_PFN_MASK;
	int fd, ok;

	if (!(e & PM_PRESENT) || !pfn)
		return -1;
	fd = open("/proc/kpageflags", O_RDONLY);
	if (fd < 0)
		return -1;
	ok = pread(fd, flags, sizeof(*flags), pfn * sizeof(*flags)) ==
	     sizeof(*flags);
	close(fd);
	return ok ? 0 : -1;
}

/* --- knobs ---------------------------------------------------------------- */

FIXTURE(knobs) {
	struct knob_state saved;
};

FIXTURE_SETUP(knobs)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	knobs_save(&self->saved);
	ASSERT_EQ(0, ksm_knob_write("run", "0"));
}

FIXTURE_TEARDOWN(knobs)
{
	prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
	knobs_restore(&self->saved);
}

/*
 * 6.12's defaults (mm/ksm.c), read with run=0.  The guest's init puts run,
 * pages_to_scan, sleep_millisecs, use_zero_pages, max_page_sharing,
 * merge_across_nodes and smart_scan back to them before each test; the
 * others it leaves alone, so they read their boot defaults only as long
 * as every test before in this boot restored them (ours all do, and
 * ksm_fuzz_test ends with every knob at its default).  advisor_mode none
 * also brings pages_to_scan back to 100.
 */
static const struct {
	const char *name, *def;
} knob_defaults[] = {
	{ "run", "0" },
	{ "pages_to_scan", "100" },
	{ "sleep_millisecs", "20" },
	{ "merge_across_nodes", "1" },
	{ "use_zero_pages", "0" },
	{ "max_page_sharing", "256" },
	{ "stable_node_chains_prune_millisecs", "2000" },
	{ "smart_scan", "1" },
	{ "advisor_mode", "[none] scan-time" },
	{ "advisor_max_cpu", "70" },
	{ "advisor_min_pages_to_scan", "500" },
	{ "advisor_max_pages_to_scan", "30000" },
	{ "advisor_target_scan_time", "200" },
};

TEST_F(knobs, defaults)
{
	unsigned int i;
	char buf[64];

	for (i = 0; i < ARRAY_SIZE(knob_defaults); i++) {
		int err = ksm_knob_read(knob_defaults[i].name, buf, sizeof(buf));

		if (err == -ENOENT &&
		    !strcmp(knob_defaults[i].name, "merge_across_nodes"))
			continue;	/* CONFIG_NUMA only */
		ASSERT_EQ(0, err) TH_LOG("%s: %s", knob_defaults[i].name,
					 strerror(-err));
		EXPECT_STREQ(knob_defaults[i].def, buf)
			TH_LOG("default of %s", knob_defaults[i].name);
	}
}

/*
 * What 6.12's store functions take.  good: the least and the greatest
 * value accepted (with what reads back, if not the same); bad: the values
 * just outside, with the errno 6.12 gives.  Each bad write is tried with
 * the knob at each of mid[], which it must keep.  Parsers: kstrtouint
 * (errors made EINVAL) for run, pages_to_scan, sleep_millisecs and
 * stable_node_chains_prune_millisecs; kstrtoul for merge_across_nodes
 * (its own errno kept: ERANGE past 2^64 - 1) and the advisor's numbers
 * (EINVAL); kstrtoint for max_page_sharing (ERANGE past INT_MAX);
 * kstrtobool for use_zero_pages and smart_scan.  advisor_max_cpu takes
 * up to 2^64 - 1 but keeps an unsigned int (README "Fuzz"): its greatest
 * value that reads back is 2^32 - 1.
 */
struct knob_value {
	const char *in, *back;
};

struct knob_bad {
	const char *in;
	int err;
};

static const struct {
	const char *name;
	struct knob_value good[3];
	const char *mid[2];
	struct knob_bad bad[4];
} knob_ranges[] = {
	{ "run", { { "0" }, { "2" }, { "1" } }, { "0", "1" },
	  { { "-1", EINVAL }, { "3", EINVAL } } },
	{ "pages_to_scan", { { "0" }, { "4294967295" } }, { "1234" },
	  { { "-1", EINVAL }, { "4294967296", EINVAL } } },
	{ "sleep_millisecs", { { "0" }, { "4294967295" } }, { "7" },
	  { { "-1", EINVAL }, { "4294967296", EINVAL } } },
	{ "merge_across_nodes", { { "0" }, { "1" } }, { "0", "1" },
	  { { "-1", EINVAL }, { "2", EINVAL },
	    { "18446744073709551616", ERANGE } } },
	{ "use_zero_pages", { { "0" }, { "1" } }, { "0", "1" },
	  { { "-1", EINVAL }, { "2", EINVAL } } },
	{ "max_page_sharing", { { "2" }, { "2147483647" } }, { "300" },
	  { { "1", EINVAL }, { "-1", EINVAL }, { "2147483648", ERANGE },
	    { "-2147483649", ERANGE } } },
	{ "stable_node_chains_prune_millisecs",
	  { { "0" }, { "4294967295" } }, { "1500" },
	  { { "-1", EINVAL }, { "4294967296", EINVAL } } },
	{ "smart_scan", { { "0" }, { "1" } }, { "0", "1" },
	  { { "-1", EINVAL }, { "2", EINVAL } } },
	{ "advisor_max_cpu", { { "0" }, { "4294967295" } }, { "55" },
	  { { "-1", EINVAL }, { "18446744073709551616", EINVAL } } },
	{ "advisor_min_pages_to_scan",
	  { { "0" }, { "18446744073709551615" } }, { "600" },
	  { { "-1", EINVAL }, { "18446744073709551616", EINVAL } } },
	{ "advisor_max_pages_to_scan",
	  { { "0" }, { "18446744073709551615" } }, { "31000" },
	  { { "-1", EINVAL }, { "18446744073709551616", EINVAL } } },
	{ "advisor_target_scan_time",
	  { { "1" }, { "18446744073709551615" } }, { "150" },
	  { { "0", EINVAL }, { "18446744073709551616", EINVAL } } },
	{ "advisor_mode",
	  { { "scan-time", "none [scan-time]" },
	    { "none", "[none] scan-time" } },
	  { "scan-time", "none" },
	  { { "scan_time", EINVAL }, { "none scan-time", EINVAL } } },
};

/* A write that must succeed and read back @v->back (or @v->in). */
static void good_write(struct __test_metadata *_metadata, const char *knob,
		       const struct knob_value *v)
{
	char back[64];

	EXPECT_EQ(0, ksm_knob_write(knob, v->in)) TH_LOG("%s <- %s", knob, v->in);
	ASSERT_EQ(0, ksm_knob_read(knob, back, sizeof(back)));
	EXPECT_STREQ(v->back ? v->back : v->in, back)
		TH_LOG("%s <- %s", knob, v->in);
}

TEST_F(knobs, ranges)
{
	unsigned int i, j, k;
	char before[64], after[64];

	/* Nothing merged: max_page_sharing and merge_across_nodes may move. */
	ASSERT_EQ(0, ksm_knob_write("run", "2"));
	ASSERT_EQ(0, ksm_knob_write("run", "0"));
	for (i = 0; i < ARRAY_SIZE(knob_ranges); i++) {
		const char *name = knob_ranges[i].name;
		char saved[64];

		if (ksm_knob_read(name, saved, sizeof(saved)) == -ENOENT &&
		    !strcmp(name, "merge_across_nodes"))
			continue;	/* CONFIG_NUMA only */
		ASSERT_EQ(0, ksm_knob_read(name, saved, sizeof(saved)));

		for (j = 0; j < 3 && knob_ranges[i].good[j].in; j++)
			good_write(_metadata, name, &knob_ranges[i].good[j]);

		for (k = 0; k < 2 && knob_ranges[i].mid[k]; k++) {
			const struct knob_value mid = {
				knob_ranges[i].mid[k],
			};

			if (!strcmp(name, "advisor_mode"))
				continue;	/* its mid reads back otherwise */
			good_write(_metadata, name, &mid);
		}
		for (k = 0; k < 2 && knob_ranges[i].mid[k]; k++) {
			ASSERT_EQ(0, ksm_knob_write(name, knob_ranges[i].mid[k]));
			ASSERT_EQ(0, ksm_knob_read(name, before, sizeof(before)));
			for (j = 0; j < 4 && knob_ranges[i].bad[j].in; j++) {
				const struct knob_bad *b = &knob_ranges[i].bad[j];

				EXPECT_EQ(-b->err, ksm_knob_write(name, b->in))
					TH_LOG("%s <- %s: want %s", name, b->in,
					       strerror(b->err));
				ASSERT_EQ(0, ksm_knob_read(name, after,
							   sizeof(after)));
				EXPECT_STREQ(before, after)
					TH_LOG("%s <- %s changed it", name,
					       b->in);
			}
		}
		/* As it was, before the next knob. */
		ASSERT_EQ(0, ksm_knob_write(name, strcmp(name, "advisor_mode") ?
					saved : advisor_mode_of(saved)));
		ASSERT_EQ(0, ksm_knob_read(name, after, sizeof(after)));
		EXPECT_STREQ(saved, after);
	}
}

/* --- mg, ksm_merge_any, ksm_mergeable ---------------------------------- */

#define REG_PAGES 16

static char *map_touched(int flags)
{
	char *p = mmap(NULL, REG_PAGES * page_size(), PROT_READ | PROT_WRITE,
		       flags, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, REG_PAGES * page_size());
	return p;
}

/* Has our VMA holding @p VmFlags mg: 1, 0, or -1 if not found. */
static int vma_mg(void *p)
{
	int mg;

	smaps_walk(getpid(), (unsigned long)p, NULL, NULL, &mg, MG_ANY,
		   NULL, 0);
	return mg;
}

/* The mg flags of all our VMAs against @want; ksm_stat's newer lines. */
static void check_registration(struct __test_metadata *_metadata,
			       enum mg_want want, unsigned long only,
			       int merge_any, int mergeable, const char *when)
{
	struct ksm_stat st;
	char why[1024];

	EXPECT_EQ(0, smaps_walk(getpid(), only, NULL, NULL, NULL, want, why,
				sizeof(why)))
		TH_LOG("%s: VmFlags mg wrong on %s", when, why);
	ASSERT_EQ(0, ksm_stat_read(getpid(), &st));
	EXPECT_STREQ("", st.odd) TH_LOG("%s: ksm_stat line", when);
	/* -1: not printed, as by 6.12 */
	EXPECT_TRUE(st.merge_any == -1 || st.merge_any == merge_any)
		TH_LOG("%s: ksm_merge_any %d, want %d", when, st.merge_any,
		       merge_any);
	EXPECT_TRUE(st.mergeable == -1 || st.mergeable == mergeable)
		TH_LOG("%s: ksm_mergeable %d, want %d", when, st.mergeable,
		       mergeable);
}

TEST_F(knobs, mergeable_vmas)
{
	char *priv, *shared, *later;
	struct ksm_stat st;

	priv = map_touched(MAP_PRIVATE | MAP_ANONYMOUS);
	shared = map_touched(MAP_SHARED | MAP_ANONYMOUS);
	ASSERT_NE(NULL, priv);
	ASSERT_NE(NULL, shared);
	ASSERT_EQ(0, ksm_stat_read(getpid(), &st));
	TH_LOG("ksm_stat %s ksm_merge_any and ksm_mergeable",
	       st.merge_any == -1 ? "without (6.12)" : "with (6.13+)");
	/* A newer line is there with its partner or not at all. */
	EXPECT_EQ(st.merge_any == -1, st.mergeable == -1);
	check_registration(_metadata, MG_NONE, 0, 0, 0, "at start");

	/* madvise(): that VMA alone. */
	ASSERT_EQ(0, madvise(priv, REG_PAGES * page_size(), MADV_MERGEABLE));
	check_registration(_metadata, MG_ONLY_ADDR, (unsigned long)priv, 0, 1,
			   "MADV_MERGEABLE");
	ASSERT_EQ(0, madvise(priv, REG_PAGES * page_size(),
			     MADV_UNMERGEABLE));
	check_registration(_metadata, MG_NONE, 0, 0, 0, "MADV_UNMERGEABLE");

	/* The prctl: every VMA KSM can take, and the ones mapped later. */
	ASSERT_EQ(0, prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0));
	EXPECT_EQ(1, prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
	later = map_touched(MAP_PRIVATE | MAP_ANONYMOUS);
	ASSERT_NE(NULL, later);
	check_registration(_metadata, MG_IF_COMPATIBLE, 0, 1, 1,
			   "PR_SET_MEMORY_MERGE 1");
	/* Not vacuous: ours are among them, shared memory is not. */
	EXPECT_EQ(1, vma_mg(priv));
	EXPECT_EQ(1, vma_mg(later));
	EXPECT_EQ(0, vma_mg(shared));

	ASSERT_EQ(0, prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0));
	EXPECT_EQ(0, prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
	check_registration(_metadata, MG_NONE, 0, 0, 0,
			   "PR_SET_MEMORY_MERGE 0");
	munmap(priv, REG_PAGES * page_size());
	munmap(shared, REG_PAGES * page_size());
	munmap(later, REG_PAGES * page_size());
}

/* --- full_scans ------------------------------------------------------------ */

/*
 * A child that registers @pages unique pages and waits for its pipe to
 * close; its pid, the pipe in *@go.
 */
static pid_t spawn_registered(int pages, int *go)
{
	int ready[2], gopipe[2], i;
	pid_t pid;
	char c;

	if (pipe(ready) || pipe(gopipe))
		return -1;
	pid = fork();
	if (!pid) {
		char *p = map_anon(pages);

		close(gopipe[1]);
		close(ready[0]);
		if (!p)
			_exit(1);
		for (i = 0; i < pages; i++)
			fill_page(p + i * page_size(), 77000 + i);
		if (madvise(p, pages * page_size(), MADV_MERGEABLE) ||
		    write(ready[1], "r", 1) != 1)
			_exit(2);
		while (read(gopipe[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(gopipe[0]);
	if (pid < 0 || read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		close(gopipe[1]);
		return -1;
	}
	close(ready[0]);
	*go = gopipe[1];
	return pid;
}

static int reap(pid_t pid, int go)
{
	int status;

	close(go);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* How far full_scans moves in @secs seconds. */
static long scans_in(double secs)
{
	long before = ksm_get("full_scans");

	usleep(secs * 1e6);
	return ksm_get("full_scans") - before;
}

/*
 * full_scans counts passes over the registered mms: it moves while
 * ksmd runs and something is registered, not with run=0, and not once
 * the last registered mm has gone (6.12 ends at most the pass in which it
 * let the mm go).  The quiet windows are long enough for dozens of passes,
 * measured on the spot.
 */
TEST_F_TIMEOUT(knobs, full_scans_only_while_registered, 120)
{
	double t0, pass, window;
	long moved, settle;
	pid_t pid;
	int go;

	ASSERT_EQ(0, ksm_knob_write("run", "2"));
	ASSERT_EQ(0, ksm_knob_write("pages_to_scan", "1000"));
	ASSERT_EQ(0, ksm_knob_write("sleep_millisecs", "0"));
	ASSERT_EQ(0, ksm_knob_write("run", "1"));

	pid = spawn_registered(64, &go);
	ASSERT_GT(pid, 0);
	t0 = now();
	ASSERT_TRUE(wait_scans(10, WAIT_S)) TH_LOG("no pass while registered");
	pass = (now() - t0) / 10;
	window = pass * 40;
	if (window < 0.3)
		window = 0.3;
	if (window > 3)
		window = 3;
	TH_LOG("a pass of 64 pages: %.2f ms; quiet windows of %.2f s",
	       pass * 1e3, window);

	/* Registered, ksmd stopped. */
	ASSERT_EQ(0, ksm_knob_write("run", "0"));
	EXPECT_EQ(0, scans_in(window)) TH_LOG("passes with run=0");
	ASSERT_EQ(0, ksm_knob_write("run", "1"));
	EXPECT_TRUE(wait_scans(2, WAIT_S)) TH_LOG("no pass after run=1");

	/* Nothing registered any more: the counters empty first. */
	ASSERT_EQ(0, reap(pid, go));
	EXPECT_TRUE(WAIT_UNTIL(ksm_get("pages_unshared") == 0 &&
			       ksm_get("pages_volatile") == 0, WAIT_S))
		TH_LOG("pages_unshared %ld, pages_volatile %ld",
		       ksm_get("pages_unshared"), ksm_get("pages_volatile"));
	settle = scans_in(window);
	moved = scans_in(window);
	EXPECT_LE(settle, 1) TH_LOG("passes after the exit");
	EXPECT_EQ(0, moved) TH_LOG("passes with nothing registered");

	/* And again as soon as something is. */
	pid = spawn_registered(64, &go);
	ASSERT_GT(pid, 0);
	EXPECT_TRUE(wait_scans(2, WAIT_S)) TH_LOG("no pass after registering");
	EXPECT_EQ(0, reap(pid, go));
}

/* --- statistics after a known workload ------------------------------------ */

/*
 * NPROC processes, each with one mergeable range of DUP pages that all of
 * them hold alike (page i: seed i), ZERO pages of zeroes (written, so
 * anonymous) and UNIQ pages of its own: DUP KSM pages with NPROC
 * mappings each; the zero pages one more KSM page (NPROC * ZERO mappings,
 * within max_page_sharing), or with use_zero_pages the kernel's zero page.
 */
#define NPROC	3
#define DUP	48
#define ZERO	24
#define UNIQ	40
#define TOTAL	(DUP + ZERO + UNIQ)

struct worker {
	pid_t pid;
	int cmd, ack;
	unsigned long base;
};

/*
 * Child: set up, report the range, then obey: 'd' write the duplicates,
 * 'z' the zero pages, 'u' the unique pages (new contents, unique still),
 * 'q' exit.
 */
static void worker_main(int id, int cmd, int ack)
{
	char *p = map_anon(TOTAL);
	unsigned long base = (unsigned long)p;
	char c;
	int i;

	if (!p)
		_exit(1);
	for (i = 0; i < DUP; i++)
		fill_page(p + i * page_size(), i);
	memset(p + DUP * page_size(), 0, ZERO * page_size());
	for (i = 0; i < UNIQ; i++)
		fill_page(p + (DUP + ZERO + i) * page_size(),
			  10000 + id * UNIQ + i);
	if (madvise(p, TOTAL * page_size(), MADV_MERGEABLE))
		_exit(2);
	if (write(ack, &base, sizeof(base)) != sizeof(base))
		_exit(3);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'q')
			_exit(0);
		for (i = 0; c == 'd' && i < DUP; i++)
			fill_page(p + i * page_size(), 20000 + id * DUP + i);
		for (i = 0; c == 'z' && i < ZERO; i++)
			fill_page(p + (DUP + i) * page_size(),
				  30000 + id * ZERO + i);
		for (i = 0; c == 'u' && i < UNIQ; i++)
			fill_page(p + (DUP + ZERO + i) * page_size(),
				  40000 + id * UNIQ + i);
		if (write(ack, &c, 1) != 1)
			_exit(4);
	}
	_exit(5);
}

/* Tell a worker @c and wait till it is done: 0 or -1. */
static int worker_do(struct worker *w, char c)
{
	char r;

	if (write(w->cmd, &c, 1) != 1 || read(w->ack, &r, 1) != 1)
		return -1;
	return r == c ? 0 : -1;
}

static int worker_start(struct worker *w, int id)
{
	int cmd[2], ack[2];

	if (pipe(cmd) || pipe(ack))
		return -1;
	w->pid = fork();
	if (!w->pid) {
		close(cmd[1]);
		close(ack[0]);
		worker_main(id, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	w->cmd = cmd[1];
	w->ack = ack[0];
	if (w->pid < 0 ||
	    read(w->ack, &w->base, sizeof(w->base)) != sizeof(w->base))
		return -1;
	return 0;
}

FIXTURE(stats) {
	struct knob_state saved;
	struct worker w[NPROC];
};

FIXTURE_VARIANT(stats) {
	bool use_zero_pages;
};

FIXTURE_VARIANT_ADD(stats, zero_pages_merged) { .use_zero_pages = false };
FIXTURE_VARIANT_ADD(stats, use_zero_pages) { .use_zero_pages = true };

FIXTURE_SETUP(stats)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	knobs_save(&self->saved);
}

/*
 * Flat out, from nothing merged; smart_scan off so that no unique page
 * sits out a pass uncounted in pages_unshared (6.12 takes a page it skips
 * out of the unstable tree: it counts as volatile then).
 */
static void stats_knobs(struct __test_metadata *_metadata, bool zero_pages)
{
	ASSERT_EQ(0, ksm_knob_write("run", "2"));
	ASSERT_EQ(0, ksm_knob_write("pages_to_scan", "1000"));
	ASSERT_EQ(0, ksm_knob_write("sleep_millisecs", "0"));
	ASSERT_EQ(0, ksm_knob_write("smart_scan", "0"));
	ASSERT_EQ(0, ksm_knob_write("max_page_sharing", "256"));
	ASSERT_EQ(0, ksm_knob_write("use_zero_pages", zero_pages ? "1" : "0"));
}

FIXTURE_TEARDOWN(stats)
{
	int i;

	for (i = 0; i < NPROC; i++) {
		if (self->w[i].pid <= 0)
			continue;
		kill(self->w[i].pid, SIGKILL);
		waitpid(self->w[i].pid, NULL, 0);
	}
	knobs_restore(&self->saved);
}

static long sum_merging(struct worker *w)
{
	long n = 0;
	int i;

	for (i = 0; i < NPROC; i++)
		n += proc_merging_pages(w[i].pid);
	return n;
}

static long sum_rmap_items(struct worker *w)
{
	long n = 0;
	int i;

	for (i = 0; i < NPROC; i++)
		n += proc_ksm_stat(w[i].pid, "ksm_rmap_items");
	return n;
}

/* What the KSM: line of smaps says of worker @w's range, and of it all. */
static void check_smaps(struct __test_metadata *_metadata, struct worker *w,
			long ksm_pages, const char *when)
{
	long kb, want = ksm_pages * page_size() / 1024;
	char why[1024];
	int mg;

	ASSERT_LE(0, smaps_walk(w->pid, w->base, "KSM", &kb, &mg,
				MG_ONLY_ADDR, why, sizeof(why)));
	EXPECT_EQ(want, kb) TH_LOG("%s: smaps KSM: of pid %d", when, w->pid);
	/* Nothing else of the worker's is KSM's. */
	EXPECT_EQ(want, rollup_kb(w->pid, "KSM"))
		TH_LOG("%s: smaps_rollup KSM: of pid %d", when, w->pid);
	EXPECT_EQ(1, mg) TH_LOG("%s: VmFlags of the range", when);
	EXPECT_EQ(0, smaps_walk(w->pid, w->base, NULL, NULL, NULL,
				MG_ONLY_ADDR, why, sizeof(why)))
		TH_LOG("%s: mg on %s", when, why);
}

/* Run ksmd for @n more passes, then stop it: 0 or -1. */
static int run_passes(long n)
{
	if (ksm_knob_write("run", "1") || !wait_scans(n, WAIT_S))
		return -1;
	return ksm_knob_write("run", "0");
}

/*
 * The frozen workload, scanned on: @rmap pages tracked, @shared and
 * @sharing as counted.  pages_scanned counts each tracked page once a
 * pass (smart_scan off); a page rewritten is volatile after the pass that
 * saw it change and unshared again after the next; with smart_scan on,
 * unique pages that stay alone are skipped (pages_skipped) and counted
 * volatile meanwhile.  KSM pages never move.
 */
static void check_scanning(struct __test_metadata *_metadata,
			   struct worker *w, long rmap, long shared,
			   long sharing)
{
	long scanned = ksm_get("pages_scanned");
	long skipped = ksm_get("pages_skipped");
	long scans = ksm_get("full_scans"), passes;
	int n;

	ASSERT_EQ(0, run_passes(3));
	passes = ksm_get("full_scans") - scans;
	scanned = ksm_get("pages_scanned") - scanned;
	TH_LOG("%ld pages scanned in %ld passes over %ld tracked pages",
	       scanned, passes, rmap);
	EXPECT_GE(scanned, (passes - 1) * rmap);
	EXPECT_LE(scanned, (passes + 1) * rmap);
	EXPECT_EQ(skipped, ksm_get("pages_skipped")) TH_LOG("smart_scan off");

	/*
	 * One pass sees worker 2's unique pages changed.  ksmd sleeps 2 s
	 * after it: time to stop it before the next.
	 */
	ASSERT_EQ(0, ksm_knob_write("sleep_millisecs", "2000"));
	ASSERT_EQ(0, worker_do(&w[2], 'u'));
	ASSERT_EQ(0, run_passes(1));
	EXPECT_EQ(UNIQ, ksm_get("pages_volatile"));
	EXPECT_EQ((NPROC - 1) * UNIQ, ksm_get("pages_unshared"));
	EXPECT_EQ(shared, ksm_get("pages_shared"));
	EXPECT_EQ(sharing, ksm_get("pages_sharing"));
	ASSERT_EQ(0, run_passes(1));
	EXPECT_EQ(0, ksm_get("pages_volatile"));
	EXPECT_EQ(NPROC * UNIQ, ksm_get("pages_unshared"));
	/* For the record, if not: how many more passes they stay volatile. */
	for (n = 0; n < 8 && ksm_get("pages_volatile"); n++)
		ASSERT_EQ(0, run_passes(1));
	if (n)
		TH_LOG("pages_volatile %ld, pages_unshared %ld after %d more passes",
		       ksm_get("pages_volatile"), ksm_get("pages_unshared"), n);
	ASSERT_EQ(0, ksm_knob_write("sleep_millisecs", "0"));

	ASSERT_EQ(0, ksm_knob_write("smart_scan", "1"));
	ASSERT_EQ(0, ksm_knob_write("run", "1"));
	EXPECT_TRUE(WAIT_UNTIL(ksm_get("pages_skipped") > skipped, WAIT_S))
		TH_LOG("no page skipped with smart_scan on");
	ASSERT_EQ(0, ksm_knob_write("run", "0"));
	ASSERT_EQ(0, ksm_knob_write("smart_scan", "0"));
	EXPECT_EQ(shared, ksm_get("pages_shared"));
	EXPECT_EQ(sharing, ksm_get("pages_sharing"));
	EXPECT_EQ(NPROC * UNIQ,
		  ksm_get("pages_unshared") + ksm_get("pages_volatile"));
	EXPECT_EQ(rmap, sum_rmap_items(w));
}

TEST_F_TIMEOUT(stats, counters_agree, 120)
{
	bool zp = variant->use_zero_pages;
	long shared, sharing, unshared, vol, zero, profit, rmap = 0;
	long want_shared = DUP + (zp ? 0 : 1);
	long want_sharing = DUP * (NPROC - 1) + (zp ? 0 : NPROC * ZERO - 1);
	long want_merging = DUP + (zp ? 0 : ZERO);	/* per process */
	long cow, swpin, zeroes_before, charge;
	struct ksm_stat st[NPROC];
	uint64_t kpf;
	int i, j;

	stats_knobs(_metadata, zp);
	for (i = 0; i < NPROC; i++)
		ASSERT_EQ(0, worker_start(&self->w[i], i));
	ASSERT_EQ(0, ksm_knob_write("run", "1"));
	ASSERT_TRUE(WAIT_UNTIL(sum_merging(self->w) == NPROC * want_merging &&
			       ksm_get("ksm_zero_pages") == (zp ? NPROC * ZERO : 0) &&
			       ksm_get("pages_unshared") == NPROC * UNIQ,
			       WAIT_S))
		TH_LOG("merging %ld of %ld, ksm_zero_pages %ld, pages_unshared %ld",
		       sum_merging(self->w), NPROC * want_merging,
		       ksm_get("ksm_zero_pages"), ksm_get("pages_unshared"));
	/* Two more passes let go of what the zero pages left; then freeze. */
	ASSERT_TRUE(wait_scans(2, WAIT_S));
	ASSERT_EQ(0, ksm_knob_write("run", "0"));

	shared = ksm_get("pages_shared");
	sharing = ksm_get("pages_sharing");
	unshared = ksm_get("pages_unshared");
	vol = ksm_get("pages_volatile");
	zero = ksm_get("ksm_zero_pages");
	profit = ksm_get("general_profit");
	TH_LOG("shared %ld sharing %ld unshared %ld volatile %ld zero %ld profit %ld",
	       shared, sharing, unshared, vol, zero, profit);
	TH_LOG("general_profit charges %.1f bytes per tracked page (6.12: %d)",
	       ((sharing + zero) * page_size() - profit) /
	       (double)(shared + sharing + unshared + vol), RMAP_ITEM_SIZE);
	/* The charge per tracked page: a whole number, at most 6.12's. */
	charge = 0;
	if (shared + sharing + unshared + vol)
		charge = ((sharing + zero) * page_size() - profit) /
			 (shared + sharing + unshared + vol);
	EXPECT_GT(charge, 0);
	EXPECT_LE(charge, RMAP_ITEM_SIZE);

	/* The global counters, from what we made. */
	EXPECT_EQ(want_shared, shared);
	EXPECT_EQ(want_sharing, sharing);
	EXPECT_EQ(NPROC * UNIQ, unshared);
	EXPECT_EQ(0, vol);
	EXPECT_EQ(zp ? NPROC * ZERO : 0, zero);
	EXPECT_EQ(0, ksm_get("stable_node_chains"));
	EXPECT_EQ(0, ksm_get("stable_node_dups"));
	EXPECT_EQ(shared + sharing, sum_merging(self->w));

	/* Per process: ksm_stat, ksm_merging_pages. */
	for (i = 0; i < NPROC; i++) {
		struct ksm_stat *s = &st[i];
		long want_rmap = DUP + UNIQ + (zp ? 0 : ZERO);

		ASSERT_EQ(0, ksm_stat_read(self->w[i].pid, s));
		EXPECT_STREQ("", s->odd) TH_LOG("ksm_stat of worker %d", i);
		EXPECT_EQ(want_rmap, s->rmap_items) TH_LOG("worker %d", i);
		EXPECT_EQ(zp ? ZERO : 0, s->zero_pages) TH_LOG("worker %d", i);
		EXPECT_EQ(want_merging, s->merging_pages) TH_LOG("worker %d", i);
		EXPECT_EQ(s->merging_pages, proc_merging_pages(self->w[i].pid));
		EXPECT_EQ((s->merging_pages + s->zero_pages) * page_size() -
			  s->rmap_items * charge, s->process_profit)
			TH_LOG("ksm_process_profit of worker %d", i);
		EXPECT_TRUE(s->merge_any == -1 || s->merge_any == 0)
			TH_LOG("worker %d: ksm_merge_any %d", i, s->merge_any);
		EXPECT_TRUE(s->mergeable == -1 || s->mergeable == 1)
			TH_LOG("worker %d: ksm_mergeable %d", i, s->mergeable);
		rmap += s->rmap_items;
	}
	/* Every tracked page is shared, sharing, unshared or volatile. */
	EXPECT_EQ(shared + sharing + unshared + vol, rmap);
	/* general_profit_show() */
	EXPECT_EQ((sharing + zero) * page_size() - rmap * charge, profit);

	/* smaps, smaps_rollup: mapped KSM pages, the zero page not. */
	for (i = 0; i < NPROC; i++)
		check_smaps(_metadata, &self->w[i], want_merging, "merged");

	/* kpageflags, through the worker's pagemap. */
	for (j = 0; j < TOTAL; j++) {
		unsigned long addr = self->w[0].base + j * page_size();
		bool is_zero = j >= DUP && j < DUP + ZERO;

		ASSERT_EQ(0, kpageflags_of(self->w[0].pid, addr, &kpf))
			TH_LOG("page %d", j);
		if (j < DUP || (is_zero && !zp)) {
			EXPECT_TRUE(kpf >> KPF_KSM & 1)
				TH_LOG("merged page %d: kpageflags %#llx", j,
				       (unsigned long long)kpf);
		} else if (is_zero) {
			EXPECT_TRUE(kpf >> KPF_ZERO_PAGE & 1)
				TH_LOG("zero page %d: kpageflags %#llx", j,
				       (unsigned long long)kpf);
			EXPECT_FALSE(kpf >> KPF_KSM & 1)
				TH_LOG("zero page %d: kpageflags %#llx", j,
				       (unsigned long long)kpf);
		} else {
			/*
			 * 6.12 tests mapping & PAGE_MAPPING_KSM, true of every
			 * anonymous folio: a unique page shows KPF_KSM with
			 * KPF_ANON (fixed upstream later by "fs/proc: fix
			 * KPF_KSM reported for all anonymous pages").
			 */
			EXPECT_TRUE(kpf >> KPF_ANON & 1) TH_LOG("page %d", j);
			EXPECT_EQ(kpf >> KPF_ANON & 1, kpf >> KPF_KSM & 1)
				TH_LOG("unique page %d: kpageflags %#llx", j,
				       (unsigned long long)kpf);
		}
	}

	check_scanning(_metadata, self->w, rmap, shared, sharing);

	/*
	 * cow_ksm: one per write to a KSM page.  Worker 0 writes its
	 * duplicates, worker 1 its zero pages: KSM pages, or the zero page
	 * (no cow_ksm, but ksm_zero_pages goes down at once).
	 */
	cow = vmstat_get("cow_ksm");
	swpin = vmstat_get("ksm_swpin_copy");
	ASSERT_LE(0, cow) TH_LOG("no cow_ksm in /proc/vmstat");
	ASSERT_EQ(0, worker_do(&self->w[0], 'd'));
	EXPECT_EQ(cow + DUP, vmstat_get("cow_ksm"));
	check_smaps(_metadata, &self->w[0], zp ? 0 : ZERO, "dups written");
	zeroes_before = ksm_get("ksm_zero_pages");
	cow = vmstat_get("cow_ksm");
	ASSERT_EQ(0, worker_do(&self->w[1], 'z'));
	EXPECT_EQ(cow + (zp ? 0 : ZERO), vmstat_get("cow_ksm"));
	EXPECT_EQ(zeroes_before - (zp ? ZERO : 0), ksm_get("ksm_zero_pages"));
	ASSERT_EQ(0, ksm_stat_read(self->w[1].pid, &st[1]));
	EXPECT_EQ(0, st[1].zero_pages);
	check_smaps(_metadata, &self->w[1], DUP, "zeroes written");
	/* Nothing was swapped. */
	EXPECT_EQ(swpin, vmstat_get("ksm_swpin_copy"));

	for (i = 0; i < NPROC; i++) {
		int status;

		ASSERT_EQ(1, write(self->w[i].cmd, "q", 1));
		ASSERT_EQ(self->w[i].pid, waitpid(self->w[i].pid, &status, 0));
		self->w[i].pid = 0;
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	}
}

/* --- ksm_swpin_copy --------------------------------------------------- */

#define SWAP_PAGES 64

/* What swap_prepare() did, for the teardown to undo. */
struct swap_state {
	bool zram_set, swap_on, in_cgroup, memory_was_on;
};

FIXTURE(swap) {
	struct knob_state saved;
	struct swap_state st;
};

FIXTURE_SETUP(swap)
{
	if (ksm_unfit())
		SKIP(return, "%s", ksm_unfit());
	knobs_save(&self->saved);
}

/* Swap on zram0, into a memory cgroup of our own, ksmd flat out. */
static void swap_prepare(struct __test_metadata *_metadata,
			 struct swap_state *self)
{
	char err[128] = "";
	int ret;

	if (access(ZRAM "disksize", F_OK))
		SKIP(return, "no zram0 (CONFIG_ZRAM)");
	if (read_long(ZRAM "disksize") > 0)
		SKIP(return, "zram0 is in use");
	ret = write_str(ZRAM "disksize", "64M");
	if (ret)
		SKIP(return, "zram0 disksize: %s", strerror(-ret));
	self->zram_set = true;
	if (system("mkswap /dev/zram0 >/dev/null 2>&1"))
		snprintf(err, sizeof(err), "mkswap /dev/zram0 failed");
	else if (swapon("/dev/zram0", 0))
		snprintf(err, sizeof(err), "swapon: %s", strerror(errno));
	if (err[0])
		SKIP(return, "%s", err);
	self->swap_on = true;
	ret = memcg_enter(CG_NAME, &self->memory_was_on);
	if (ret == MEMCG_NO_V2 || ret == MEMCG_NO_CTRL)
		SKIP(return, "no memory cgroup controller");
	if (ret == MEMCG_NO_DIR)
		SKIP(return, "mkdir " CG ": %s", strerror(errno));
	/* Made: to leave, even if we could not move in. */
	self->in_cgroup = true;
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, ksm_knob_write("run", "2"));
	ASSERT_EQ(0, ksm_knob_write("pages_to_scan", "1000"));
	ASSERT_EQ(0, ksm_knob_write("sleep_millisecs", "0"));
	ASSERT_EQ(0, ksm_knob_write("run", "1"));
}

FIXTURE_TEARDOWN(swap)
{
	if (self->st.in_cgroup)
		memcg_leave(CG_NAME, self->st.memory_was_on);
	/* swapoff reads back whatever of ours is still out there. */
	if (self->st.swap_on)
		swapoff("/dev/zram0");
	if (self->st.zram_set)
		write_str(ZRAM "reset", "1");
	knobs_restore(&self->saved);
}

/* How many pairs a[i], b[i] are out on one and the same swap entry. */
static int same_swap_entries(char *a, char *b)
{
	uint64_t ea[SWAP_PAGES], eb[SWAP_PAGES];
	int i, n = 0;

	if (pagemap_read(a, SWAP_PAGES, ea) || pagemap_read(b, SWAP_PAGES, eb))
		return -1;
	for (i = 0; i < SWAP_PAGES; i++)
		n += (ea[i] & PM_SWAP) && ea[i] == eb[i];
	return n;
}

/*
 * a and b, two ranges of ours, merged page for page and swapped out by
 * memcg reclaim (ksmd stopped): each pair shares one swap entry.  Faulting
 * a[i] in takes the page from the swap cache as it is and makes it a's;
 * faulting b[i] then finds a page of another anon_vma and index, which
 * ksm_might_need_to_copy() copies: ksm_swpin_copy counts one per pair.
 */
TEST_F_TIMEOUT(swap, swapin_copies_counted, 120)
{
	long before, after;
	int i, pairs = 0;
	char *a, *b;

	ASSERT_LE(0, vmstat_get("ksm_swpin_copy"))
		TH_LOG("no ksm_swpin_copy in /proc/vmstat");
	swap_prepare(_metadata, &self->st);
	if (_metadata->exit_code)	/* skipped */
		return;
	a = map_anon(SWAP_PAGES);
	b = map_anon(SWAP_PAGES);
	ASSERT_TRUE(a && b);
	for (i = 0; i < SWAP_PAGES; i++) {
		fill_page(a + i * page_size(), 40000 + i);
		fill_page(b + i * page_size(), 40000 + i);
	}
	ASSERT_EQ(0, madvise(a, SWAP_PAGES * page_size(), MADV_MERGEABLE));
	ASSERT_EQ(0, madvise(b, SWAP_PAGES * page_size(), MADV_MERGEABLE));
	ASSERT_TRUE(WAIT_UNTIL(same_frames(a, b, SWAP_PAGES) == SWAP_PAGES,
			       WAIT_S))
		TH_LOG("%d of %d pairs merged", same_frames(a, b, SWAP_PAGES),
		       SWAP_PAGES);
	ASSERT_EQ(0, ksm_knob_write("run", "0"));

	before = vmstat_get("ksm_swpin_copy");
	/* Reclaim may give up early (EAGAIN) having done some. */
	WAIT_UNTIL((write_str(CG "memory.reclaim", "64M"),
		    (pairs = same_swap_entries(a, b)) > 0), WAIT_S);
	ASSERT_GT(pairs, 0) TH_LOG("no merged pair went out to swap");
	EXPECT_EQ(2 * pairs, swapped_pages(a, SWAP_PAGES) +
			     swapped_pages(b, SWAP_PAGES))
		TH_LOG("a KSM page went out for one of its mappings only");
	EXPECT_EQ(before, vmstat_get("ksm_swpin_copy"));

	/* All of a first, then all of b. */
	EXPECT_EQ(SWAP_PAGES, pages_holding(a, SWAP_PAGES, 40000));
	EXPECT_EQ(SWAP_PAGES, pages_holding(b, SWAP_PAGES, 40000));
	EXPECT_EQ(0, swapped_pages(a, SWAP_PAGES) +
		     swapped_pages(b, SWAP_PAGES));
	after = vmstat_get("ksm_swpin_copy");
	TH_LOG("%d pairs swapped; ksm_swpin_copy %ld -> %ld", pairs, before,
	       after);
	EXPECT_EQ(before + pairs, after);
	/* The copies are b's own; pairs that stayed in memory stay merged. */
	EXPECT_EQ(SWAP_PAGES - pairs, same_frames(a, b, SWAP_PAGES));
}

TEST_HARNESS_MAIN
