#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Make OBJ/.config: tinyconfig plus our fragments, and check that every
# option a fragment sets (or unsets) survived olddefconfig.
set -eu
src=$(realpath "$1")
obj=$(realpath -m "$2")
shift 2
mkdir -p "$obj"
make -s -C "$src" O="$obj" tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$@" >/dev/null
make -s -C "$src" O="$obj" olddefconfig >/dev/null

# A line whose symbol depends on something missing is silently dropped by
# kconfig: say which, and fail, rather than build the wrong kernel.
lost=$(for frag in "$@"; do
	grep -E '^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set)' "$frag" |
	while IFS= read -r line; do
		sym=$(echo "$line" | grep -oE 'CONFIG_[A-Za-z0-9_]+')
		case "$line" in
		\#*) grep -q "^$sym=" "$obj/.config" || continue ;;
		*) grep -qxF "$line" "$obj/.config" && continue ;;
		esac
		echo "kconfig: '$line' from $(basename "$frag") did not stick"
	done
done)
if [ -n "$lost" ]; then
	echo "$lost" >&2
	exit 1
fi
echo "  CONFIG  $obj/.config"
