# SPDX-License-Identifier: GPL-2.0
# Sourced by the client tests: verdicts in kselftest's exit codes (0 pass,
# 1 fail, 4 skip) and waits that are bounded and checked.
KSM=/sys/kernel/mm/ksm

pass() { echo "PASS: $*"; exit 0; }
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 4; }

# need FILE...: skip unless every file is in the guest.
need() {
	for f; do
		[ -e "$f" ] || skip "$f is not in the guest (make deps, then rebuild)"
	done
}

uptime_s() {	# seconds since boot
	read -r up _ < /proc/uptime
	echo "${up%.*}"
}

uptime_ds() {	# tenths of a second since boot
	read -r up _ < /proc/uptime
	up=${up%?}
	echo "$((${up%.*} * 10 + ${up#*.}))"
}

# since T: seconds, to a tenth, from T (an uptime_ds).
since() {
	d=$(($(uptime_ds) - $1))
	echo "$((d / 10)).$((d % 10))"
}

# wait_for SECONDS WHAT COMMAND...: run COMMAND every half second until it
# succeeds; fail with WHAT after SECONDS.
wait_for() {
	limit=$1 what=$2
	shift 2
	deadline=$(($(uptime_s) + limit))
	until "$@"; do
		[ "$(uptime_s)" -lt "$deadline" ] ||
			fail "$what: not within $limit s"
		sleep 0.5
	done
}

ksm() { cat "$KSM/$1"; }
ksm_is() { [ "$(ksm "$1")" = "$2" ]; }	# ksm_is KNOB VALUE

[ -e $KSM/run ] || skip "no $KSM: a kernel without KSM"
