#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Pack the guest userland into an uncompressed initramfs, as root:root
# whoever builds it:
#   /init, busybox, the test programs from build-selftests.sh, and any
#   EXTRA_BINS (dynamically linked programs come with their libraries).
set -euo pipefail
out=$(realpath -m "$1")
tests=$(realpath "$2")
repo=$(realpath "$3")
gen=$(realpath "$4")	# the kernel's usr/gen_init_cpio, built by us
shift 4

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,root,etc,tests}
cp /bin/busybox "$stage/bin/busybox"
install -m 0755 "$repo/harness/guest/init" "$stage/init"
cp -a "$tests/6.12" "$tests/ours" "$tests/bin" "$stage/tests/"
echo "root:x:0:0:root:/root:/bin/sh" > "$stage/etc/passwd"

for bin in "$@"; do
	path=$(command -v "$bin") || { echo "mkinitramfs: no $bin" >&2; exit 1; }
	cp "$path" "$stage/bin/"
	ldd "$path" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
	done
done

{
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/ttyS1 0600 0 0 c 4 65"
	(cd "$stage" && find . -mindepth 1 | sort) | while read -r f; do
		p=${f#.}
		mode=$(stat -c %a "$stage$p")
		if [ -L "$stage$p" ]; then
			echo "slink $p $(readlink "$stage$p") $mode 0 0"
		elif [ -d "$stage$p" ]; then
			echo "dir $p $mode 0 0"
		else
			echo "file $p $stage$p $mode 0 0"
		fi
	done
} > "$stage.list"
"$gen" "$stage.list" > "$out.tmp"
rm -f "$stage.list"
mv "$out.tmp" "$out"
echo "  INITRAMFS $out ($(($(stat -c %s "$out") / 1024)) KiB)"
