#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Two QEMUs with -machine mem-merge=on (which madvises their guest RAM
# MADV_MERGEABLE), paused, each with 4 MiB of random data loaded into its
# RAM: the same data but for the last 64 pages.  KSM must merge the 960
# pages the two hold in common, and each QEMU must read its own data back
# through QMP (pmemsave).  Then one QEMU is reset, which copies its data
# into its RAM again: every merged page is copied on write, both QEMUs
# still read their own data, and KSM merges the pages again.
. /tests/clients/lib.sh

QEMU=/usr/bin/qemu-system-x86_64
need $QEMU /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so \
	/usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin

PAGES=1024 DIFF=64 ADDR=8388608		# 4 MiB at guest address 8 MiB
EXPECT=$((PAGES - DIFF))
# QEMU's own RAM blocks besides pc.ram (BIOS 256 KiB, option ROMs 128 KiB,
# ACPI and loader tables 2 MiB + 68 KiB) may merge too, on top of EXPECT.
SLACK=$((2 * (256 + 128 + 2048 + 68) / 4))
dir=/tmp/qemu-ksm

# Per QEMU NAME (a or b), in $dir: NAME.in (a fifo, its QMP input, kept
# open on fd 3 or 4), NAME.out (QMP output), NAME.err, NAME.pid, NAME.sent
# (the commands sent, one a line: each gets one answer).
cleanup() {
	for q in a b; do
		[ -f "$dir/$q.pid" ] && kill -9 "$(cat "$dir/$q.pid")" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT

pid() { cat "$dir/$1.pid"; }

dead() {	# dead NAME: fail if that QEMU is gone
	kill -0 "$(pid "$1")" 2>/dev/null && return 1
	fail "QEMU $1 exited: $(tail -n 5 "$dir/$1.err")"
}

has() {		# has NAME TEXT: QEMU NAME printed TEXT
	grep -q "$2" "$dir/$1.out" || { dead "$1"; return 1; }
}

answered() {	# answered NAME: QEMU NAME answered all it was sent
	if grep -q '"error"' "$dir/$1.out"; then
		fail "QEMU $1: $(grep '"error"' "$dir/$1.out")"
	fi
	[ "$(grep -c '"return"' "$dir/$1.out")" -ge \
		"$(wc -l < "$dir/$1.sent")" ] || { dead "$1"; return 1; }
}

qmp() {		# qmp NAME JSON: send one QMP command, wait for its answer
	echo "$2" >> "$dir/$1.sent"
	if [ "$1" = a ]; then
		echo "$2" >&3
	else
		echo "$2" >&4
	fi
	wait_for 120 "QEMU $1: answer to $2" answered "$1"
}

# start NAME DATA: a paused QEMU with DATA at ADDR of its RAM.  timeout
# (it execs QEMU) ends it should this script be killed.
start() {
	mkfifo "$dir/$1.in"
	: > "$dir/$1.sent"
	timeout -s KILL 900 $QEMU -machine pc,mem-merge=on \
		-accel tcg,tb-size=16 -m 32M -nodefaults -display none -S \
		-qmp stdio -device loader,file="$2",addr=$ADDR \
		< "$dir/$1.in" > "$dir/$1.out" 2> "$dir/$1.err" &
	echo $! > "$dir/$1.pid"
}

check() {	# check NAME DATA: QEMU NAME's RAM at ADDR still holds DATA
	rm -f "$dir/$1.dump"
	qmp "$1" "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": $ADDR, \
\"size\": $((PAGES * 4096)), \"filename\": \"$dir/$1.dump\"}}"
	cmp "$dir/$1.dump" "$2" || fail "QEMU $1: guest RAM differs from $2"
}

merging() { cat "/proc/$(pid "$1")/ksm_merging_pages"; }

# merged: the pages in common are merged, each QEMU maps EXPECT KSM pages.
merged() {
	[ $(($(ksm pages_sharing) - sharing0)) -ge $EXPECT ] &&
		[ "$(merging a)" -ge $EXPECT ] && [ "$(merging b)" -ge $EXPECT ]
}

scans_past() { [ "$(ksm full_scans)" -ge "$1" ]; }

cow_ksm() { awk '$1 == "cow_ksm" { print $2 }' /proc/vmstat; }

mkdir -p $dir
dd if=/dev/urandom of=$dir/a bs=4096 count=$PAGES 2>/dev/null
cp $dir/a $dir/b
dd if=/dev/urandom of=$dir/b bs=4096 seek=$EXPECT count=$DIFF \
	conv=notrunc 2>/dev/null
cmp -s $dir/a $dir/b && fail "data a and b are equal"

t0=$(uptime_ds)
start a $dir/a
exec 3> $dir/a.in
start b $dir/b
exec 4> $dir/b.in
for q in a b; do
	wait_for 120 "QEMU $q: QMP greeting" has $q '"QMP"'
	qmp $q '{"execute": "qmp_capabilities"}'
done
echo "# both QEMUs up in $(since "$t0") s"

sharing0=$(ksm pages_sharing)
echo 5000 > $KSM/pages_to_scan
echo 10 > $KSM/sleep_millisecs
echo 1 > $KSM/run
t0=$(uptime_ds)
wait_for 120 "$EXPECT pages merged across the QEMUs" merged
gain=$(($(ksm pages_sharing) - sharing0))
echo "# merged in $(since "$t0") s: pages_sharing +$gain" \
	"(expected $EXPECT..$((EXPECT + SLACK)));" \
	"ksm_merging_pages a=$(merging a) b=$(merging b)"
[ $gain -le $((EXPECT + SLACK)) ] ||
	fail "pages_sharing +$gain: more than $EXPECT + $SLACK could merge"
check a $dir/a
check b $dir/b
merged || fail "pages were unmerged by reading them back"

# Two more full scans: every page in common is merged now.
wait_for 120 "two full scans" scans_past $(($(ksm full_scans) + 2))
cow0=$(cow_ksm)
qmp b '{"execute": "system_reset"}'
wait_for 120 "QEMU b: reset" has b '"RESET"'
cow=$(($(cow_ksm) - cow0))
echo "# reset of b: cow_ksm +$cow"
[ $cow -ge $EXPECT ] || fail "reset copied $cow KSM pages, not $EXPECT"
check a $dir/a
check b $dir/b
t0=$(uptime_ds)
wait_for 120 "merged again after the reset" merged
echo "# merged again in $(since "$t0") s:" \
	"pages_sharing +$(($(ksm pages_sharing) - sharing0))"
check a $dir/a
check b $dir/b
for q in a b; do
	qmp $q '{"execute": "quit"}'
done
pass "QEMU mem-merge: $EXPECT pages merged, data intact"
