#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make lint: the kernel's static checks on our files, one line per check
# in the harness's PASS/FAIL form, and an "N passed, N failed" count in
# OUT (for make check).
#
#   lint.sh PRISTINE SRC OBJ REPO [OUT]
#
# - scripts/checkpatch.pl --strict on every C file, header and patch of
#   ours (patches are checked as the series exports them, by make series)
# - scripts/kernel-doc -none on mm/ksm
# - make W=1 and make C=2 (sparse) on mm/ksm: every warning fails, but
#   those listed in harness/config/lint-known, each with its reason
# - the admin guide through the kernel's Sphinx (make htmldocs of
#   admin-guide/mm): no warning may name ksm.rst
set -uo pipefail
pristine=$(realpath "$1")
src=$(realpath "$2")
obj=$(realpath "$3")
repo=$(realpath "$4")
out=${5:-}
known="$repo/harness/config/lint-known"
pass=0 fail=0

verdict() {	# verdict NAME FINDINGS-FILE
	if [ -s "$2" ]; then
		fail=$((fail + 1))
		echo "FAIL [lint] $1"
		sed 's/^/    /' "$2"
	else
		pass=$((pass + 1))
		echo "PASS [lint] $1"
	fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo" || exit 1

# Our files: the subsystem, its tests, the guest tools.
mapfile -t cfiles < <(git ls-files 'mm/ksm/*.[ch]' 'mm/ksm/tests/*.h' \
	'tools/testing/selftests/mm/ksm_*.[ch]' 'harness/guest/*.[ch]')

for f in "${cfiles[@]}"; do
	"$pristine/scripts/checkpatch.pl" --strict --no-tree -q -f "$f" \
		> "$tmp/cp" 2>&1
	verdict "checkpatch --strict $f" "$tmp/cp"
done

for f in mm/ksm/*.[ch] mm/ksm/tests/*.h; do
	"$pristine/scripts/kernel-doc" -none "$f" > "$tmp/kd" 2>&1
	verdict "kernel-doc $f" "$tmp/kd"
done

# Compiler and sparse warnings, minus the known ones (path:line-free
# patterns, one per line, '#' starts a reason).
filter_known() {
	grep -E 'warning:|error:' "$1" |
		grep -v -F -f <(sed -e 's/[[:space:]]*#.*//' -e '/^$/d' "$known") || true
}

make -C "$src" O="$obj" -s W=1 mm/ksm/ > "$tmp/w1" 2>&1
filter_known "$tmp/w1" > "$tmp/w1f"
verdict "make W=1 mm/ksm" "$tmp/w1f"

make -C "$src" O="$obj" -s C=2 mm/ksm/ > "$tmp/sp" 2>&1
filter_known "$tmp/sp" > "$tmp/spf"
verdict "sparse (make C=2) mm/ksm" "$tmp/spf"

# The admin guide through the kernel's Sphinx (its directory only, built
# afresh: Sphinx repeats no warning for a page it does not rebuild).
docs=$(dirname "$obj")/docs
if command -v sphinx-build > /dev/null; then
	rm -rf "$docs"
	make -C "$src" O="$docs" SPHINXDIRS=admin-guide/mm htmldocs \
		> "$tmp/doc" 2>&1 || echo "make htmldocs failed" >> "$tmp/doc"
	# htmldocs writes the netlink specs' pages into the source tree.
	for f in "$src"/Documentation/networking/netlink_spec/*.rst; do
		[ -e "$pristine/${f#"$src"/}" ] || rm -f "$f"
	done
	grep -E 'admin-guide/mm/ksm\.rst|htmldocs failed' "$tmp/doc" > "$tmp/docf" || true
	[ -f "$docs/Documentation/output/admin-guide/mm/ksm.html" ] ||
		echo "no ksm.html was built" >> "$tmp/docf"
	verdict "htmldocs Documentation/admin-guide/mm/ksm.rst" "$tmp/docf"
else
	echo "no sphinx-build (Debian: python3-sphinx)" > "$tmp/docf"
	verdict "htmldocs Documentation/admin-guide/mm/ksm.rst" "$tmp/docf"
fi

# Back to the flags of a normal build, so that the next one is quiet.
make -C "$src" O="$obj" -s mm/ksm/ > /dev/null 2>&1

echo "lint: $pass passed, $fail failed"
[ -n "$out" ] && echo "$pass $fail 0" > "$out"
[ "$fail" -eq 0 ]
