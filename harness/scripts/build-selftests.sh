#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest's test programs, static, against the 6.12 uAPI headers:
#   OUT/6.12/  6.12's ksm_tests and ksm_functional_tests, from the pristine
#              tree plus harness/selftests-6.12/*.patch (upstream fixes only)
#   OUT/ours/  every program in the repository's tools/testing/selftests/mm/
#   OUT/bin/   guest tools of the harness (ksm_demo, ksm_bench, ksm_stress,
#              ksm_launch)
set -euo pipefail
pristine=$(realpath "$1")
hdr=$(realpath "$2")
out=$(realpath -m "$3")
repo=$(realpath "$4")
CC=${CC:-gcc}
sel=$pristine/tools/testing/selftests
CFLAGS="-static -Wall -O2 -U_FORTIFY_SOURCE -no-pie -isystem $hdr/include"
CFLAGS="$CFLAGS -I $pristine -isystem $pristine/tools/include/uapi"

mkdir -p "$out/6.12" "$out/ours" "$out/bin" "$out/src-6.12"

cc() {	# output sources-and-flags...
	local o=$1
	shift
	echo "  CC      ${o#"$out"/}"
	# shellcheck disable=SC2086
	$CC $CFLAGS "$@" -o "$o.tmp" && mv "$o.tmp" "$o"
}

# 6.12's code is not ours to fix: keep its warnings in a log, show on error.
cc_quiet() {
	local log
	log=$out/$(basename "$1").log
	echo "  CC      ${1#"$out"/} (warnings: ${log#"$out"/})"
	if ! cc "$@" > "$log" 2>&1; then
		cat "$log" >&2
		exit 1
	fi
}

# 6.12's programs: a private copy of the mm selftests with our fixes.
src=$out/src-6.12
rsync -a --delete "$sel/mm/" "$src/mm/"
cp "$sel/kselftest.h" "$src/"
for p in "$repo"/harness/selftests-6.12/*.patch; do
	[ -f "$p" ] || continue
	patch -d "$src" -p4 -s -f --no-backup-if-mismatch < "$p"
done
common="$src/mm/vm_util.c $src/mm/thp_settings.c"
cc_quiet "$out/6.12/ksm_tests" -I "$src/mm" "$src/mm/ksm_tests.c" $common \
	-lnuma -lrt -lpthread -lm
cc_quiet "$out/6.12/ksm_functional_tests" -I "$src/mm" \
	"$src/mm/ksm_functional_tests.c" $common -lrt -lpthread -lm

# Ours: a .c with a main() is a program; any other .c is linked into each.
ours=$repo/tools/testing/selftests/mm
rm -f "$out"/ours/*
if [ -d "$ours" ]; then
	progs=() libs=()
	for f in "$ours"/*.c; do
		[ -f "$f" ] || continue
		if grep -qE '^(int main\(|TEST_HARNESS_MAIN)' "$f"; then
			progs+=("$f")
		else
			libs+=("$f")
		fi
	done
	for f in "${progs[@]}"; do
		cc "$out/ours/$(basename "$f" .c)" -Werror -I "$ours" -I "$sel" -I "$sel/mm" \
			"$f" "${libs[@]}" $common -lnuma -lrt -lpthread -lm
	done
fi

for p in ksm_demo ksm_bench ksm_stress; do
	cc "$out/bin/$p" -Werror "$repo/harness/guest/$p.c" \
		"$repo/harness/guest/ksm_guest.c" -lm
done
cc "$out/bin/ksm_launch" -Werror "$repo/harness/guest/ksm_launch.c"
