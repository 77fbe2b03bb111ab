#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make series: our work as a git format-patch series on pristine 6.12,
# in the steps patches/plan lists, with a cover letter.
#
#   series.sh PRISTINE REPO WORK OUT [OURS]
#
# WORK keeps a git tree of pristine 6.12 (made once, a few minutes) and
# the series' branch; OUT gets the patches.  With OURS (our synced build
# tree), the series is also applied with git am to a fresh checkout of
# the base and the result compared with OURS: exit 1 if they differ.
set -euo pipefail
pristine=$(realpath "$1")
repo=$(realpath "$2")
work=$(realpath -m "$3")
out=$(realpath -m "$4")
ours=${5:+$(realpath "$5")}
tree=$work/tree
plan=$repo/patches/plan
ident=$(git -C "$repo" log -1 --format='%an <%ae>')
version=$(cat "$pristine/.unpacked")

export GIT_AUTHOR_NAME=${ident% <*} GIT_COMMITTER_NAME=${ident% <*}
export GIT_AUTHOR_EMAIL=${ident#*<} GIT_COMMITTER_EMAIL=${ident#*<}
GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL%>} GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL%>}
# Reproducible: the same work gives the same patches.
export GIT_AUTHOR_DATE="$(git -C "$repo" log -1 --format=%aI)"
export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
g() { git -C "$tree" -c core.autocrlf=false -c gc.auto=0 "$@"; }

# The base: pristine 6.12 as one commit, tagged, made once.
if ! g rev-parse -q --verify refs/tags/base >/dev/null 2>&1; then
	echo "  SERIES  base tree of linux-$version (once)"
	rm -rf "$tree"
	mkdir -p "$tree"
	cp -a "$pristine/." "$tree/"
	rm -f "$tree/.unpacked"
	g init -q
	g add -A -f
	g commit -q -m "Linux $version"
	g tag base
fi
g checkout -q -f -B series base
g clean -q -fdx

# Every file of ours at a kernel path must be in the plan.
mapfile -t ours_files < <(cd "$repo" && git ls-files Documentation mm include \
	tools | grep -v '^tools/testing/selftests/mm/.*\.orig$' || true)

subject= files=() body=
declare -A planned=()
commit_step() {
	local f msg
	[ -z "$subject" ] && [ ${#files[@]} -eq 0 ] && return 0
	if [ -z "$subject" ]; then
		# A patch of ours: its message is its own header.
		f=${files[0]}
		(cd "$tree" && patch -s -p1 < "$repo/$f")
		msg=$(sed '/^--- a\//,$d' "$repo/$f")
		planned[$f]=1
	else
		for f in "${files[@]}"; do
			case $f in
			-\ *)
				g rm -q "${f#- }"
				continue ;;
			patches/*)
				(cd "$tree" && patch -s -p1 < "$repo/$f")
				planned[$f]=1
				continue ;;
			esac
			mkdir -p "$tree/$(dirname "$f")"
			cp "$repo/$f" "$tree/$f"
			planned[$f]=1
		done
		msg=$(printf '%s\n\n%s' "$subject" "$body")
	fi
	g add -A -f
	printf '%s\n\nSigned-off-by: %s\n' "$msg" "$ident" | g commit -q -F -
	subject= files=() body=
}

while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	'#'*|'') continue ;;
	'@'*)
		commit_step
		subject=${line#@}
		subject=${subject# } ;;
	'|'*)
		line=${line#|}
		body+="${line# }"$'\n' ;;
	'- '*)
		files+=("$line") ;;
	*)
		mapfile -t -O ${#files[@]} files < <(cd "$repo" && git ls-files "$line")
		[ -n "$(cd "$repo" && git ls-files "$line")" ] ||
			{ echo "series: nothing matches $line" >&2; exit 1; } ;;
	esac
done < "$plan"
commit_step

missing=0
for f in "${ours_files[@]}"; do
	if [ -z "${planned[$f]:-}" ]; then
		echo "series: $f is in no step of patches/plan" >&2
		missing=1
	fi
done
for f in $(cd "$repo" && sed -e 's/#.*//' -e '/^$/d' patches/series); do
	[ -n "${planned[patches/$f]:-}" ] ||
		{ echo "series: patches/$f is in no step" >&2; missing=1; }
done
[ $missing -eq 0 ] || exit 1

rm -rf "$out"
mkdir -p "$out"
g format-patch -q --cover-letter --thread --no-signature -o "$out" base..series
cover=$(ls "$out"/0000-*.patch)
n=$(ls "$out" | grep -vc '^0000-')
python3 "$repo/harness/scripts/cover.py" "$cover" "$repo" "$version" "$n"
echo "  SERIES  $n patches and a cover letter in $out"

[ -n "$ours" ] || exit 0
# The series as a maintainer takes it: git am on a fresh base.
verify=$work/verify
rm -rf "$verify"
git clone -q --shared --no-checkout "$tree" "$verify"
git -C "$verify" checkout -q -f -B am base
git -C "$verify" -c user.name="${ident% <*}" -c user.email="$GIT_AUTHOR_EMAIL" \
	am -q $(ls "$out"/[0-9][0-9][0-9][0-9]-*.patch | grep -v /0000-) 2>&1 |
	grep -v '^$' || true
[ "$(git -C "$verify" rev-list --count base..am)" -eq "$n" ] ||
	{ echo "FAIL [series] git am did not apply all $n patches"; exit 1; }
if diff -rq --exclude=.git --exclude=.unpacked --exclude=.copied --exclude=.ksm-overlay-manifest "$verify" "$ours" > "$work/diff"; then
	echo "PASS [series] $n patches apply with git am to linux-$version and give our tree"
else
	echo "FAIL [series] the series does not give our tree:"
	head -20 "$work/diff"
	exit 1
fi
