/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by our KSM selftests: sysfs knobs and a clock. */
#ifndef KSM_TEST_UTIL_H
#define KSM_TEST_UTIL_H

#define KSM_DIR "/sys/kernel/mm/ksm/"

long read_long(const char *path);
long ksm_get(const char *name);
int ksm_set(const char *name, long value);
double now(void);

#endif /* KSM_TEST_UTIL_H */
