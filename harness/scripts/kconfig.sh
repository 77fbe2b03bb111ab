#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Make OBJ/.config: tinyconfig plus our fragments, and check that every
# option a fragment asks for survived olddefconfig.
set -eu
src=$(realpath "$1")
obj=$(realpath -m "$2")
shift 2
mkdir -p "$obj"
make -s -C "$src" O="$obj" tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$@" >/dev/null
make -s -C "$src" O="$obj" olddefconfig >/dev/null
bad=0
for frag in "$@"; do
	grep -E '^CONFIG_[A-Za-z0-9_]+=' "$frag" | while IFS= read -r line; do
		if ! grep -qx "$line" "$obj/.config"; then
			echo "kconfig: $line from $(basename "$frag") did not stick" >&2
			echo x
		fi
	done
done | grep -q x && bad=1
[ $bad -eq 0 ] || exit 1
echo "  CONFIG  $obj/.config"
