#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Pack the guest userland into an uncompressed initramfs, as root:root
# whoever builds it.
#
#   mkinitramfs.sh OUT TESTS REPO GEN_INIT_CPIO
#       /init, busybox and the test programs from build-selftests.sh
#   mkinitramfs.sh --extra [--optional] OUT GEN_INIT_CPIO FILE...
#       host files, dynamically linked ones with their libraries, as an
#       archive to append to the first (the kernel unpacks both): a name
#       is a program from PATH, put in /bin; an absolute path is carried
#       at that path.  --optional: a missing file is only reported (the
#       test that needs it then skips)
set -euo pipefail

stage=$(mktemp -d)
trap 'rm -rf "$stage" "$stage.list"' EXIT

add_file() {	# copy a host file and the libraries it loads
	local path=$1 dest=$1 lib
	case $1 in
	/*) ;;
	*) dest=/bin/$1; path=$(command -v "$1") || path= ;;
	esac
	if [ ! -f "$path" ]; then
		echo "mkinitramfs: no $1" >&2
		[ -n "$optional" ] && return 0
		exit 1
	fi
	mkdir -p "$stage$(dirname "$dest")"
	cp -L "$path" "$stage$dest"
	# A static program has no libraries: ldd then fails, and that is fine.
	{ ldd "$path" 2>/dev/null || true; } | grep -oE '/[^ ]+' |
		while read -r lib; do
			mkdir -p "$stage$(dirname "$lib")"
			cp -L "$lib" "$stage$lib"
		done || true
}

optional=
if [ "$1" = --extra ]; then
	shift
	[ "$1" = --optional ] && optional=1 && shift
	out=$(realpath -m "$1")
	gen=$(realpath "$2")
	shift 2
	for f in "$@"; do
		add_file "$f"
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
	cp -a "$repo/harness/guest/clients" "$stage/tests/"
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
