#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Unpack the pristine 6.12 tree once and record which 6.12.y it is.
set -eu
tarball=$1
dest=$2

if [ -f "$dest/.unpacked" ]; then
	exit 0
fi
[ -f "$tarball" ] || { echo "unpack: $tarball missing (run: make deps)" >&2; exit 1; }
rm -rf "$dest" "$dest.tmp"
mkdir -p "$dest.tmp"
echo "  UNPACK  $tarball"
tar -xf "$tarball" -C "$dest.tmp" --strip-components=1
# The tree is our baseline: make it read-only to everyone but the sync step.
ver=$(make -s -C "$dest.tmp" kernelversion)
case "$ver" in
6.12.*) ;;
*) echo "unpack: expected a 6.12.y tree, got $ver" >&2; exit 1 ;;
esac
mv "$dest.tmp" "$dest"
echo "$ver" > "$dest/.unpacked"
echo "  PRISTINE linux-$ver"
