#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make series-verify: build every prefix of the series that make series
# applied with git am (WORK/verify, branch am on tag base), with our
# config, in one object folder; print the last bzImage's path.
#
#   series-verify.sh WORK OBJ HARNESS KCC JOBS
set -euo pipefail
work=$(realpath "$1")
obj=$(realpath -m "$2")
h=$(realpath "$3")
kcc=$4
jobs=$5
verify=$work/verify
n=$(git -C "$verify" rev-list --count base..am)
[ "$n" -gt 0 ] || { echo "series-verify: run make series first" >&2; exit 1; }

for i in $(seq 1 "$n"); do
	rev=$(git -C "$verify" rev-list --reverse base..am | sed -n "${i}p")
	git -C "$verify" checkout -q -f "$rev"
	subject=$(git -C "$verify" log -1 --format=%s)
	# Our KUnit options exist once mm/ksm/Kconfig is sourced.
	frags="$h/config/ksm.config"
	grep -q 'mm/ksm/Kconfig' "$verify/mm/Kconfig" &&
		frags="$frags $h/config/ours.config"
	# shellcheck disable=SC2086
	"$h/scripts/kconfig.sh" "$verify" "$obj" $frags > /dev/null
	if make -C "$verify" O="$obj" CC="$kcc" HOSTCC="$kcc" -j"$jobs" -s \
		bzImage > "$obj.log" 2>&1; then
		echo "PASS [series-verify] $i/$n builds: $subject"
	else
		echo "FAIL [series-verify] $i/$n does not build: $subject"
		tail -20 "$obj.log"
		exit 1
	fi
done
git -C "$verify" checkout -q -f am
cp "$obj/arch/x86/boot/bzImage" "$work/bzImage"
echo "$work/bzImage"
