#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench: the same workloads on the baseline and on our kernel.

Boots each kernel once with suite=bench (harness/guest/init), which runs
every workload bench_repeats times; reads the guest-timed results from the
guest's test log, and prints medians and ratios ours/baseline.  Saves
results.json, results.csv and a plot of pages_sharing over time.

By default the guests keep time by counting instructions (QEMU -icount):
under plain TCG a guest's clock is the host's, and this host's noise moved
single figures by 30%.  With the instruction clock most figures repeat
to 1%, whatever else the host does (S3's broken merges, a race by
nature, to 10-25%), so both guests boot at once.  Round-robin TCG makes a cross-CPU TLB flush wait for the next
timer tick, which no real machine does, so these guests get one vCPU:
ksmd shares it with the workload, as on a busy host.
"""
import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

# 6.12's ksm_tests print their own guest-timed figures.
KSM_TESTS = {
    "-P": ("S6_ksm_tests_P", "merge_time"),
    "-H": ("S6_ksm_tests_H", "merge_time_thp"),
    "-D": ("S6_ksm_tests_D", "unmerge_time"),
}


def parse(log):
    """Results per (scenario, metric): lists of values; units; samples."""
    values, units, samples = {}, {}, {}
    test = None
    merged_cow = False
    with open(log, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"@@KSMT BEGIN (.*) \S+$", line)
            if m:
                test, merged_cow = m.group(1), False
                continue
            if line.startswith("@@KSMT END"):
                test = None
                continue
            if not test:
                continue
            m = re.match(r"@@BENCH (\S+) (\S+) (\S+) (\S+)", line)
            if m:
                key = (m.group(1), m.group(2))
                values.setdefault(key, []).append(float(m.group(3)))
                units[key] = m.group(4)
                continue
            m = re.match(r"@@SAMPLE (\S+) (\S+)", line)
            if m:
                samples.setdefault(test, []).append(
                    (float(m.group(1)), int(m.group(2))))
                continue
            m = re.match(r"ksm_tests (-\w) #", test)
            if not m:
                continue
            opt = m.group(1)
            if "Merged pages" in line:
                merged_cow = True
            t = re.search(r"Total time:\s+([0-9.]+) s", line)
            if not t:
                continue
            if opt in KSM_TESTS:
                key = KSM_TESTS[opt]
            elif opt == "-C" and merged_cow:
                key = ("S6_ksm_tests_C", "cow_time_merged")
            else:
                continue
            values.setdefault(key, []).append(float(t.group(1)))
            units[key] = "s"
    return values, units, samples


def spread(runs):
    """(max - min) / median of the runs, in percent: how far they wander."""
    med = statistics.median(runs) if runs else 0
    return 100.0 * (max(runs) - min(runs)) / abs(med) if med else None


def start_guest(a, kernel, label, log_dir):
    cmd = ["python3", os.path.join(a.harness, "scripts", "guest.py"),
           "--kernel", kernel, "--initrd", a.initrd, "--label", label,
           "--suite", "bench", "--log-dir", log_dir, "--timeout", "1700",
           "--smp", str(a.smp),
           "--append", f"bench_repeats={a.repeats} bench_args={a.args}"
           + (f" bench_only={a.only}" if a.only else "")]
    if a.icount is not None:
        cmd += ["--icount", str(a.icount)]
    print(f"bench: {label}: booting", flush=True)
    return subprocess.Popen(cmd)


def plot(out, samples, labels):
    if not shutil.which("gnuplot"):
        return None
    png = os.path.join(out, "pages_sharing.png")
    lines = []
    for label in labels:
        runs = samples.get(label) or {}
        first = runs.get(sorted(runs)[0]) if runs else []
        path = os.path.join(out, f"samples-{label}.dat")
        with open(path, "w") as f:
            for t, s in first:
                f.write(f"{t} {s}\n")
        lines.append(f"'{path}' using 1:2 with lines lw 2 title '{label}'")
    script = (f"set terminal png size 900,500 noenhanced\nset output '{png}'\n"
              "set xlabel 'guest seconds'\nset ylabel 'pages_sharing'\n"
              "set title 'S1 convergence (first repeat)'\nset key bottom right\n"
              f"plot {', '.join(lines)}\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=False)
    return png if os.path.exists(png) else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours", required=True, help="our bzImage")
    p.add_argument("--baseline", required=True, help="6.12's bzImage")
    p.add_argument("--initrd", required=True)
    p.add_argument("--harness", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--args", default="", help="ksm_bench mix args, commas")
    p.add_argument("--only", default="",
                   help="workloads to run, commas: mix,volatile,ksm_tests,churn")
    p.add_argument("--icount", default="0",
                   help="instruction clock shift; empty: the host's clock")
    p.add_argument("--smp", type=int, default=None,
                   help="vCPUs (default 1 with --icount, else 2)")
    a = p.parse_args()
    a.icount = int(a.icount) if a.icount.strip() else None
    if a.smp is None:
        a.smp = 1 if a.icount is not None else 2
    os.makedirs(a.out, exist_ok=True)

    results, units, samples = {}, {}, {}
    failed = False
    guests = (("baseline", a.baseline), ("ours", a.ours))
    procs = {}
    for label, kernel in guests:
        procs[label] = start_guest(a, kernel, label,
                                   os.path.join(a.out, label))
        # On the host's clock the guests must not compete for its cores.
        if a.icount is None:
            procs[label].wait()
    for label, _ in guests:
        failed |= procs[label].wait() != 0
        vals, u, smp = parse(os.path.join(a.out, label, "tests.log"))
        results[label] = vals
        units.update(u)
        samples[label] = smp

    keys = sorted(set(results["baseline"]) | set(results["ours"]))
    rows = []
    limit = None
    for key in keys:
        b = results["baseline"].get(key, [])
        o = results["ours"].get(key, [])
        bm = statistics.median(b) if b else None
        om = statistics.median(o) if o else None
        ratio = om / bm if bm and om is not None else None
        rows.append({"scenario": key[0], "metric": key[1],
                     "unit": units.get(key, ""), "baseline": bm, "ours": om,
                     "ratio": ratio, "runs_baseline": b, "runs_ours": o,
                     "spread_baseline": spread(b), "spread_ours": spread(o)})
        if key == ("limit", "hash_all_memory_once"):
            limit = om

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "metric", "unit", "baseline", "ours",
                    "ratio_ours_baseline", "spread_baseline_pct",
                    "spread_ours_pct"])
        for r in rows:
            w.writerow([r["scenario"], r["metric"], r["unit"], r["baseline"],
                        r["ours"], r["ratio"], r["spread_baseline"],
                        r["spread_ours"]])

    def fmt(v):
        return "-" if v is None else f"{v:.4g}"

    def pct(v):
        return "-" if v is None else f"{v:.0f}%"

    print(f"\n{'scenario':<18} {'metric':<26} {'unit':<5} {'baseline':>10} "
          f"{'ours':>10} {'ours/base':>9} {'spread b/o':>11}  limit")
    for r in rows:
        lim = ""
        if r["metric"] == "time_to_99pct" and limit:
            lim = f"{fmt(limit)} s to hash it all once"
        spr = f"{pct(r['spread_baseline'])}/{pct(r['spread_ours'])}"
        print(f"{r['scenario']:<18} {r['metric']:<26} {r['unit']:<5} "
              f"{fmt(r['baseline']):>10} {fmt(r['ours']):>10} "
              f"{fmt(r['ratio']):>9} {spr:>11}  {lim}")
    clock = ("instruction clock, 2^%d ns per instruction" % a.icount
             if a.icount is not None else "the host's clock")
    print(f"\nmedians of {a.repeats} runs, guest time ({clock}, "
          f"{a.smp} vCPU{'s' if a.smp > 1 else ''}); results in {a.out}")
    png = plot(a.out, samples, ("baseline", "ours"))
    print(f"plot: {png}" if png else "plot: none (gnuplot not installed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
