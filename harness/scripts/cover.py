#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Fill the cover letter git format-patch left: subject and blurb.

cover.py COVER REPO VERSION N

The blurb says what the series is and why, the design in a few lines,
the newest make bench table (build/bench/*/results.csv) and the newest
make check counts of both kernels (build/logs/*-check/counts).
"""

import csv
import glob
import os
import sys

cover, repo, version, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
build = os.path.join(repo, "build")

SUBJECT = "mm/ksm: Kernel Samepage Merging, rewritten as a subsystem"

WHAT = f"""\
This series replaces mm/ksm.c with a new implementation of Kernel
Samepage Merging in mm/ksm/, one file per responsibility, on Linux
{version}.  Every interface stays as it was: sysfs, madvise, prctl,
/proc, the nine tracepoints, and every hook the rest of mm calls
(include/linux/ksm.h).  Unmodified userspace (QEMU's mem-merge,
ksmtuned, systemd's MemoryKSM=) and 6.12's own KSM selftests work
unchanged.

Why: to track pages at a fraction of the memory, to make a scan cost
what changed rather than what the stable tree holds, and to merge sooner
without merging pages that are only copied again at their next write.

The design, in five lines:
1. Tracking: one xarray slot per page seen; a candidate is a value
   entry (signature, age, back-off), no allocation: 17 bytes a page
   when dense, against a 64-byte rmap_item.
2. Volatility: a page goes to the trees once its signature held for a
   visit, longer if it keeps changing or its merges keep breaking.
3. Trees: red-black trees ordered by a cached 64-bit content key; pages
   are read only where keys tie.
4. Merging: write-protect, compare, replace; one mmap lock at a time,
   never held across tree searches; ksmd alone changes the trees.
5. Sharers: a KSM page's node keeps an array of (mm, address, anon_vma)
   that the sharers' slots point into: a sharer leaves in constant time.

Patches 1-5 add mm/ksm/ without building it; patch 6 switches mm/ to it
and drops mm/ksm.c; then two small fixes outside the subsystem, the
tests, the admin guide and a MAINTAINERS entry.  Every prefix builds.
"""


def newest(pattern):
    paths = sorted(glob.glob(pattern))
    return paths[-1] if paths else None


def bench_table():
    path = newest(os.path.join(build, "bench", "2*", "results.csv"))
    if not path:
        return "(no make bench results in this build folder)\n"
    rows = list(csv.DictReader(open(path)))
    lines = [f"make bench, {os.path.basename(os.path.dirname(path))} "
             "(medians, instruction clock; ratio ours/6.12):", ""]
    lines.append(f"  {'scenario':<17} {'metric':<27} {'6.12':>10} "
                 f"{'ours':>10} {'ratio':>7}")
    def num(v, fmt):
        try:
            return format(float(v), fmt)
        except ValueError:
            return v or "-"

    for r in rows:
        lines.append(f"  {r['scenario']:<17} {r['metric']:<27} "
                     f"{num(r['baseline'], '.4g'):>10} {num(r['ours'], '.4g'):>10} "
                     f"{num(r['ratio_ours_baseline'], '.3f'):>7}")
    return "\n".join(lines) + "\n"


def check_counts():
    out = []
    for k in ("ours", "baseline"):
        path = newest(os.path.join(build, "logs", f"*-{k}-check", "counts"))
        if not path:
            continue
        p, f, s = open(path).read().split()[:3]
        out.append(f"  {k:<9} {p} passed, {f} failed, {s} skipped "
                   f"({os.path.basename(os.path.dirname(path))})")
    if not out:
        return "(no make check results in this build folder)\n"
    return ("make check (KUnit, our selftests, 6.12's KSM selftests, the\n"
            "QEMU, ksmtuned and stress-ng clients, a short stress):\n\n"
            + "\n".join(out) + "\n")


STATIC = """\
Static checks (make lint): checkpatch --strict, kernel-doc, W=1 and
sparse are clean on our files, but for six sparse "context imbalance"
warnings where sparse cannot pair the locks that folio_walk_start(),
page_vma_mapped_walk() and pmd_trans_huge_lock() take with the unlocks
their callers do; 6.12's mm/ksm.c gets the same five for the same calls.
checkpatch --strict on these patches asks of each one that adds files
whether MAINTAINERS needs updating: the first patch adds the entry that
covers them all (mm/ksm/, the tests and the admin guide).
"""

blurb = "\n".join([WHAT, bench_table(), check_counts(), STATIC])
text = open(cover).read()
text = text.replace("*** SUBJECT HERE ***", SUBJECT)
text = text.replace("*** BLURB HERE ***", blurb.rstrip("\n"))
open(cover, "w").write(text)
