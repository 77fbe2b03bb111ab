#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Pack the guest userland into an uncompressed initramfs, as root:root
# whoever builds it.
#
#   mkinitramfs.sh OUT TESTS REPO GEN_INIT_CPIO
#       /init, busybox and the test programs from build-selftests.sh
#   mkinitramfs.sh --extra OUT GEN_INIT_CPIO PROGRAM...
#       host programs, dynamically linked ones with their libraries, as an
#       archive to append to the first (the kernel unpacks both)
set -euo pipefail

stage=$(mktemp -d)
trap 'rm -rf "$stage" "$stage.list"' EXIT

add_program() {	# copy a host program and the libraries it loads
	local path lib
	path=$(command -v "$1") || { echo "mkinitramfs: no $1" >&2; exit 1; }
	mkdir -p "$stage/bin"
	cp -L "$path" "$stage/bin/"
	# A static program has no libraries: ldd then fails, and that is fine.
	{ ldd "$path" 2>/dev/null || true; } | grep -oE '/[^ ]+' |
		while read -r lib; do
			mkdir -p "$stage$(dirname "$lib")"
			cp -L "$lib" "$stage$lib"
		done || true
}

if [ "$1" = --extra ]; then
	out=$(realpath -m "$2")
	gen=$(realpath "$3")
	shift 3
	for bin in "$@"; do
		add_program "$bin"
	done
	nodes=""
else
	out=$(realpath -m "$1")
	tests=$(realpath "$2")
	repo=$(realpath "$3")
	gen=$(realpath "$4")
	mkdir -p "$stage"/{bin,dev,proc,sys,tmp,root,etc,tests}
	cp /bin/busybox "$stage/bin/busybox"
	install -m 0755 "$repo/harness/guest/init" "$stage/init"
	cp -a "$tests/6.12" "$tests/ours" "$tests/bin" "$stage/tests/"
	echo "root:x:0:0:root:/root:/bin/sh" > "$stage/etc/passwd"
	nodes="nod /dev/console 0600 0 0 c 5 1
nod /dev/ttyS1 0600 0 0 c 4 65"
fi

{
	[ -n "$nodes" ] && echo "$nodes"
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
mv "$out.tmp" "$out"
echo "  INITRAMFS $out ($(($(stat -c %s "$out") / 1024)) KiB)"
