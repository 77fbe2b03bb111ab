#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# stress-ng's memory stressor, started the way systemd starts a unit with
# MemoryKSM=yes (ksm_launch: PR_SET_MEMORY_MERGE, then execve), KSM on.
# Two workers fill 2 MiB each with a method's pattern, verify it, sleep a
# second (--vm-hang: KSM merges meanwhile), and again, for SECS seconds.
# For each method: the flag outlived execve (stress-ng's mappings are
# mergeable), both workers got at least half of their buffer merged, and
# stress-ng, which verifies every pass, reports no failure.
. /tests/clients/lib.sh

need /usr/bin/stress-ng /tests/bin/ksm_launch
OUT=/tmp/stress-ng.out
SECS=${SECS:-15}
HALF=256		# pages: half of each worker's 2 MiB (4 MiB / 2 workers)

# workers PID: the stress-ng processes under PID, one a line.
workers() {
	for s in /proc/[0-9]*/stat; do
		read -r p comm _ 2>/dev/null < "$s" || continue
		case "$comm" in "(stress-ng"*) [ "$p" != "$1" ] && echo "$p" ;; esac
	done
}

echo 5000 > $KSM/pages_to_scan
echo 10 > $KSM/sleep_millisecs
echo 1 > $KSM/run
# METHOD:ADVICE; hugepage gives the buffers THPs that KSM has to split.
for run in zero-one:normal walk-1d:normal inc-nybble:hugepage; do
	method=${run%:*}
	ksm_launch /usr/bin/stress-ng --vm 2 --vm-bytes 4M --vm-keep \
		--vm-hang 1 --vm-method "$method" --vm-madvise "${run#*:}" \
		--verify --timeout "$SECS" --metrics-brief > $OUT 2>&1 &
	pid=$!
	deadline=$(($(uptime_s) + SECS + 120))
	flagged=0 most=0 merging=
	while kill -0 $pid 2>/dev/null; do
		grep -q '^VmFlags:.* mg' /proc/$pid/smaps 2>/dev/null &&
			flagged=1
		s=$(ksm pages_sharing)
		[ "$s" -gt $most ] && most=$s
		for w in $(workers $pid); do
			m=$(cat /proc/$w/ksm_merging_pages 2>/dev/null)
			[ "${m:-0}" -ge $HALF ] || continue
			case " $merging " in *" $w "*) ;; *) merging="$merging $w" ;; esac
		done
		if [ "$(uptime_s)" -ge $deadline ]; then
			kill -9 $pid
			fail "$run: stress-ng still runs after $((SECS + 120)) s"
		fi
		sleep 1
	done
	wait $pid
	rc=$?
	sed 's/^/# /' $OUT
	set -- $merging
	echo "# $run: exit $rc, pages_sharing up to $most," \
		"workers with $HALF+ pages merged: $#"
	[ $rc = 0 ] || fail "$run: stress-ng exit $rc"
	grep -qE 'fail:|failed: [1-9]|error' $OUT &&
		fail "$run: stress-ng reports a failure"
	[ $flagged = 1 ] ||
		fail "$run: no mergeable mapping: PR_SET_MEMORY_MERGE lost in execve"
	[ $# -ge 2 ] || fail "$run: $# workers had $HALF pages merged, not 2"
done
pass "stress-ng under MemoryKSM: workers' memory merged, data verified"
