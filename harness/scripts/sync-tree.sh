#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make OURS = PRISTINE + the repository's files at kernel paths + its patches.
#
# Only files whose content changes are rewritten, so kbuild rebuilds just
# what depends on an edit.  A manifest remembers what we installed last
# time: a file dropped from the repository goes back to its pristine
# content, or disappears if the pristine tree never had it.
#
# Repository layout read here:
#   <top-level dir that also exists in the kernel>/...  overlay files
#   patches/series        patch file names, applied in order (-p1)
#   patches/removed       pristine paths that our tree must not have
set -euo pipefail

pristine=$(realpath "$1")
ours=$(realpath -m "$2")
repo=$(realpath "$3")
manifest=$ours/.ksm-overlay-manifest

if [ ! -f "$ours/.copied" ]; then
	echo "  COPY    pristine -> $ours"
	rm -rf "$ours"
	cp -a "$pristine" "$ours.tmp"
	touch "$ours.tmp/.copied"
	mv "$ours.tmp" "$ours"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Overlay: tracked and not-ignored untracked files under kernel top dirs.
git -C "$repo" ls-files --cached --others --exclude-standard -z |
	tr '\0' '\n' | sort -u | while IFS= read -r f; do
		top=${f%%/*}
		[ "$top" != "$f" ] || continue
		[ -d "$pristine/$top" ] || continue
		[ -f "$repo/$f" ] || continue	# deleted but still in the index
		printf '%s\n' "$f"
	done > "$stage/overlay.list"

series=()
if [ -f "$repo/patches/series" ]; then
	while IFS= read -r p; do
		p=${p%%#*}
		p=$(echo "$p" | xargs)
		[ -n "$p" ] && series+=("$repo/patches/$p")
	done < "$repo/patches/series"
fi

: > "$stage/patched.list"
for p in "${series[@]}"; do
	[ -f "$p" ] || { echo "sync-tree: missing patch $p" >&2; exit 1; }
	sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p" >> "$stage/patched.list"
done
sort -u -o "$stage/patched.list" "$stage/patched.list"

: > "$stage/removed.list"
if [ -f "$repo/patches/removed" ]; then
	sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$repo/patches/removed" |
		sort -u > "$stage/removed.list"
fi

# Build the wanted content of every patched file in the stage.
mkdir -p "$stage/tree"
while IFS= read -r f; do
	mkdir -p "$stage/tree/$(dirname "$f")"
	if grep -qxF "$f" "$stage/overlay.list"; then
		cp "$repo/$f" "$stage/tree/$f"
	elif [ -f "$pristine/$f" ]; then
		cp "$pristine/$f" "$stage/tree/$f"
	fi
done < "$stage/patched.list"
for p in "${series[@]}"; do
	if ! patch -d "$stage/tree" -p1 -s -f --no-backup-if-mismatch < "$p"; then
		echo "sync-tree: $(basename "$p") does not apply" >&2
		exit 1
	fi
done

install_file() {	# src dst: replace dst only when the content differs
	if ! cmp -s "$1" "$2"; then
		mkdir -p "$(dirname "$2")"
		cp "$1" "$2.ksm-tmp"
		mv -f "$2.ksm-tmp" "$2"
		echo "  INSTALL ${2#"$ours"/}"
	fi
}

sort -u "$stage/overlay.list" "$stage/patched.list" > "$stage/wanted.list"
while IFS= read -r f; do
	if grep -qxF "$f" "$stage/removed.list"; then
		echo "sync-tree: $f is both removed and provided" >&2
		exit 1
	fi
	if grep -qxF "$f" "$stage/patched.list"; then
		install_file "$stage/tree/$f" "$ours/$f"
	else
		install_file "$repo/$f" "$ours/$f"
	fi
done < "$stage/wanted.list"

while IFS= read -r f; do
	if [ -e "$ours/$f" ]; then
		rm -f "$ours/$f"
		echo "  REMOVE  $f"
	fi
done < "$stage/removed.list"

# Whatever we managed before and no longer do returns to pristine.
if [ -f "$manifest" ]; then
	sort -u "$stage/wanted.list" "$stage/removed.list" > "$stage/now.list"
	comm -23 <(sort -u "$manifest") "$stage/now.list" | while IFS= read -r f; do
		if [ -f "$pristine/$f" ]; then
			install_file "$pristine/$f" "$ours/$f"
		elif [ -e "$ours/$f" ]; then
			rm -f "$ours/$f"
			echo "  REMOVE  $f"
		fi
	done
fi
sort -u "$stage/wanted.list" "$stage/removed.list" > "$manifest"
