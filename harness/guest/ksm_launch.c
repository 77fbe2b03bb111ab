// SPDX-License-Identifier: GPL-2.0
/*
 * ksm_launch: run a program the way systemd runs a unit with
 * MemoryKSM=yes: prctl(PR_SET_MEMORY_MERGE, 1), then execve().  The flag
 * outlives the execve(), so every anonymous mapping the program and its
 * children make is mergeable without a single madvise().
 *
 *	ksm_launch PROGRAM [ARGUMENT...]
 */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: ksm_launch PROGRAM [ARGUMENT...]\n");
		return 2;
	}
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		fprintf(stderr, "ksm_launch: PR_SET_MEMORY_MERGE: %s\n",
			strerror(errno));
		return 1;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "ksm_launch: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
