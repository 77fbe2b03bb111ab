// SPDX-License-Identifier: GPL-2.0
/*
 * The /sys/kernel/mm/ksm interface as 6.12 defines it: every file is
 * there, good writes read back, bad writes fail with 6.12's errno and
 * change nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ksm_page_util.h"

static const char * const ksm_files[] = {
	"run", "pages_to_scan", "sleep_millisecs", "merge_across_nodes",
	"use_zero_pages", "max_page_sharing",
	"stable_node_chains_prune_millisecs", "smart_scan", "advisor_mode",
	"advisor_max_cpu", "advisor_min_pages_to_scan",
	"advisor_max_pages_to_scan", "advisor_target_scan_time",
	"pages_scanned", "pages_shared", "pages_sharing", "pages_unshared",
	"pages_volatile", "pages_skipped", "ksm_zero_pages", "general_profit",
	"full_scans", "stable_node_chains", "stable_node_dups",
};

FIXTURE(knobs) {
	char saved[8][64];
};

static const char * const touched[] = {
	"run", "pages_to_scan", "sleep_millisecs", "max_page_sharing",
	"advisor_mode", "advisor_target_scan_time", "use_zero_pages",
};

FIXTURE_SETUP(knobs)
{
	unsigned int i;

	if (access(KSM_DIR "run", F_OK))
		SKIP(return, "no KSM in this kernel");
	if (geteuid())
		SKIP(return, "needs root");
	for (i = 0; i < ARRAY_SIZE(touched); i++)
		ASSERT_EQ(0, ksm_knob_read(touched[i], self->saved[i],
					   sizeof(self->saved[i])));
}

FIXTURE_TEARDOWN(knobs)
{
	unsigned int i;

	/* The advisor first: it decides whether pages_to_scan is writable. */
	for (i = ARRAY_SIZE(touched); i-- > 0;) {
		const char *v = self->saved[i];

		if (!strcmp(touched[i], "advisor_mode"))
			v = strchr(v, '[') && !strncmp(strchr(v, '[') + 1, "none", 4) ?
			    "none" : "scan-time";
		ksm_knob_write(touched[i], v);
	}
}

TEST_F(knobs, every_file_is_there)
{
	char buf[64];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ksm_files); i++) {
		int err = ksm_knob_read(ksm_files[i], buf, sizeof(buf));

		if (err == -ENOENT && !strcmp(ksm_files[i], "merge_across_nodes"))
			continue;	/* only with CONFIG_NUMA */
		EXPECT_EQ(0, err) TH_LOG("%s: %s", ksm_files[i], strerror(-err));
	}
}

/* A bad write fails with want_errno and leaves the value as it was. */
static void bad_write(struct __test_metadata *_metadata, const char *knob,
		      const char *val, int want_errno)
{
	char before[64], after[64];

	ASSERT_EQ(0, ksm_knob_read(knob, before, sizeof(before)));
	EXPECT_EQ(-want_errno, ksm_knob_write(knob, val))
		TH_LOG("%s <- '%s'", knob, val);
	ASSERT_EQ(0, ksm_knob_read(knob, after, sizeof(after)));
	EXPECT_STREQ(before, after);
}

static void good_write(struct __test_metadata *_metadata, const char *knob,
		       const char *val)
{
	char back[64];

	ASSERT_EQ(0, ksm_knob_write(knob, val)) TH_LOG("%s <- '%s'", knob, val);
	ASSERT_EQ(0, ksm_knob_read(knob, back, sizeof(back)));
	EXPECT_STREQ(val, back);
}

TEST_F(knobs, run_takes_0_1_2_only)
{
	bad_write(_metadata, "run", "3", EINVAL);
	bad_write(_metadata, "run", "-1", EINVAL);
	bad_write(_metadata, "run", "one", EINVAL);
	good_write(_metadata, "run", "0");
}

TEST_F(knobs, pages_to_scan_and_sleep_read_back)
{
	good_write(_metadata, "pages_to_scan", "1234");
	good_write(_metadata, "sleep_millisecs", "7");
	bad_write(_metadata, "pages_to_scan", "many", EINVAL);
	bad_write(_metadata, "sleep_millisecs", "-5", EINVAL);
}

TEST_F(knobs, max_page_sharing_needs_two)
{
	bad_write(_metadata, "max_page_sharing", "1", EINVAL);
	bad_write(_metadata, "max_page_sharing", "0", EINVAL);
	bad_write(_metadata, "max_page_sharing", "-4", EINVAL);
}

TEST_F(knobs, use_zero_pages_is_a_bool)
{
	good_write(_metadata, "use_zero_pages", "1");
	good_write(_metadata, "use_zero_pages", "0");
	bad_write(_metadata, "use_zero_pages", "maybe", EINVAL);
}

TEST_F(knobs, advisor_owns_pages_to_scan)
{
	char mode[64];

	bad_write(_metadata, "advisor_mode", "fast", EINVAL);
	bad_write(_metadata, "advisor_target_scan_time", "0", EINVAL);
	ASSERT_EQ(0, ksm_knob_write("advisor_mode", "scan-time"));
	ASSERT_EQ(0, ksm_knob_read("advisor_mode", mode, sizeof(mode)));
	EXPECT_STREQ("none [scan-time]", mode);
	bad_write(_metadata, "pages_to_scan", "100", EINVAL);
	ASSERT_EQ(0, ksm_knob_write("advisor_mode", "none"));
	ASSERT_EQ(0, ksm_knob_read("advisor_mode", mode, sizeof(mode)));
	EXPECT_STREQ("[none] scan-time", mode);
	good_write(_metadata, "pages_to_scan", "100");
}

TEST_HARNESS_MAIN
