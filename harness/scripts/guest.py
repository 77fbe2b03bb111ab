#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot a test guest under QEMU, follow its suite, judge the result.

The guest's /init writes test output on ttyS1 (our stdout pipe) and the
kernel writes its console on ttyS0 (a log file).  We print one line per
test as results arrive, then read the console for KUnit results and for
any kernel splat, and close with 'N passed, N failed, N skipped'.
Exit status: 0 only if nothing failed, no splat, no hang.
"""

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time

# A kernel line (it has a printk timestamp) matching one of these fails the
# run: WARN, BUG and BUG_ON, oopses, panics, lockdep, KASAN, UBSAN, hung
# tasks and RCU stalls, list and page corruption reports.
SPLAT = re.compile(
    r"^\[\s*\d+\.\d+\]\s.*("
    r"WARNING:|BUG:|kernel BUG at|Oops|Kernel panic|general protection fault|"
    r"INFO: |UBSAN:|list_(add|del) corruption|Bad page|"
    r"Call Trace:|self-detected stall|detected stalls)"
)
STAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
KTAP_CASE = re.compile(r"^    (not ok|ok) \d+ (.*?)(\s+#\s*(SKIP|skip)\b.*)?$")
KTAP_SUITE = re.compile(r"^    # Subtest: (\S+)")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")
TAP_LINE = re.compile(r"^(not ok|ok) \d+ (.*?)(\s+#\s*(SKIP|skip)\b(.*))?$")


class Tally:
    def __init__(self, label):
        self.label = label
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.failed = []

    def add(self, verdict, name, extra=""):
        self.counts[verdict] += 1
        if verdict == "FAIL":
            self.failed.append(name)
        tail = f" ({extra})" if extra else ""
        print(f"{verdict} [{self.label}] {name}{tail}", flush=True)

    def closing(self):
        c = self.counts
        return f"{c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped"


def qemu_cmd(a, accel, suite_interactive):
    append = (f"console=ttyS0 numa=fake=2 panic=-1 loglevel=7 "
              f"suite={a.suite} {a.append}").strip()
    cmd = ["qemu-system-x86_64", "-accel", accel, "-M", "pc",
           "-smp", str(a.smp), "-m", a.mem, "-nodefaults", "-display", "none",
           "-no-reboot", "-kernel", a.kernel, "-initrd", a.initrd,
           "-append", append]
    if a.icount is not None:
        # Guest time counts guest instructions (2^shift ns each) and jumps
        # over idle spells: what the guest measures no longer depends on
        # how busy the host is.  One host thread runs all vCPUs in turn.
        cmd += ["-icount", f"shift={a.icount},sleep=off,align=off",
                "-rtc", "clock=vm"]
    if suite_interactive:
        cmd += ["-serial", "mon:stdio"]
    else:
        cmd += ["-serial", f"file:{a.log_dir}/console.log",
                "-chardev", "stdio,id=tests,signal=off",
                "-serial", "chardev:tests"]
    return cmd


class Session:
    """One boot: stream ttyS1, split it into tests, time-bound the lot."""

    def __init__(self, a, tally):
        self.a = a
        self.tally = tally
        self.raw = open(os.path.join(a.log_dir, "tests.log"), "w",
                        buffering=1)
        self.current = None
        self.block = []
        self.ready = False
        self.done = False
        self.last_running = None

    def boot(self, accel, ready_within=None):
        cmd = qemu_cmd(self.a, accel, False)
        self.raw.write("# " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + self.a.timeout
        buf = b""
        hung = False
        while True:
            left = deadline - time.monotonic()
            if ready_within is not None and not self.ready:
                left = min(left, ready_within - time.monotonic())
            if left <= 0:
                hung = True
                break
            r, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if not r:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.line(line.decode("utf-8", "replace").rstrip("\r"))
        if buf:
            self.line(buf.decode("utf-8", "replace").rstrip("\r"))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.raw.flush()
        return hung

    def line(self, text):
        self.raw.write(text + "\n")
        if text.startswith("@@KSMT READY"):
            self.ready = True
            return
        if text.startswith("@@KSMT DONE"):
            self.done = True
            return
        if text.startswith("@@KSMT BEGIN "):
            name, _, kind = text[len("@@KSMT BEGIN "):].rpartition(" ")
            self.current = (name, kind)
            self.last_running = name
            self.block = []
            return
        if text.startswith("@@KSMT END ") and self.current:
            self.finish_test(text)
            self.current = None
            return
        if self.current:
            self.block.append(text)
            if self.a.suite in ("run", "exec", "stress"):
                print(text, flush=True)
        elif self.a.suite in ("run", "exec", "stress"):
            print(text, flush=True)

    def finish_test(self, end):
        name, kind = self.current
        fields = dict(f.split("=", 1) for f in end.split()[3:] if "=" in f)
        rc = int(fields.get("rc", "1"))
        secs = int(fields.get("ms", "0")) / 1000.0
        attempt = int(fields.get("attempt", "1"))
        timing = f"{secs:.1f}s"
        if attempt > 1:
            timing += f", attempt {attempt}"
        if kind == "tap":
            seen_fail = False
            plan = None
            results = 0
            for text in self.block:
                m = TAP_PLAN.match(text)
                if m:
                    plan = int(m.group(1))
                m = TAP_LINE.match(text)
                if not m:
                    continue
                results += 1
                desc = m.group(2).strip()
                if m.group(4):
                    self.tally.add("SKIP", f"{name}: {desc}",
                                   (m.group(5) or "").strip())
                elif m.group(1) == "ok":
                    self.tally.add("PASS", f"{name}: {desc}")
                else:
                    seen_fail = True
                    self.tally.add("FAIL", f"{name}: {desc}")
            if plan is not None and results < plan:
                seen_fail = True
                self.tally.add("FAIL", f"{name}: {plan - results} of {plan} "
                               "planned results never came")
            if rc != 0 and not seen_fail:
                self.tally.add("FAIL", name, f"exit {rc}, {timing}")
                self.show_tail()
            elif rc == 0 and not self.block:
                self.tally.add("FAIL", name, "printed no result")
            elif seen_fail:
                self.show_tail()
            return
        # Plain programs: kselftest exit codes (0 pass, 4 skip).
        if rc == 0:
            self.tally.add("PASS", name, timing)
        elif rc == 4:
            self.tally.add("SKIP", name, timing)
        else:
            retry = attempt < self.a.attempts
            if retry:
                print(f"note [{self.tally.label}] {name}: exit {rc} on "
                      f"attempt {attempt}, retrying", flush=True)
                return
            what = "killed at its time limit" if rc == 137 else f"exit {rc}"
            self.tally.add("FAIL", name, f"{what}, {timing}")
            self.show_tail()

    def show_tail(self):
        for text in self.block[-15:]:
            print(f"    | {text}", flush=True)


def kunit_results(console, tally):
    suite = None
    for raw in console:
        if not STAMP.match(raw):
            continue
        text = STAMP.sub("", raw, count=1)
        m = KTAP_SUITE.match(text)
        if m:
            suite = m.group(1)
            continue
        m = KTAP_CASE.match(text)
        if m and suite:
            name = f"kunit {suite}.{m.group(2).strip()}"
            if m.group(4):
                tally.add("SKIP", name)
            else:
                tally.add("PASS" if m.group(1) == "ok" else "FAIL", name)


def splats(console):
    return [ln for ln in console if SPLAT.search(ln)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kernel", required=True)
    p.add_argument("--initrd", required=True)
    p.add_argument("--suite", default="check")
    p.add_argument("--label", default="ours")
    p.add_argument("--log-dir", required=True)
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--accel", default="tcg")
    p.add_argument("--append", default="")
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--mem", default="2G")
    p.add_argument("--attempts", type=int, default=1)
    p.add_argument("--icount", type=int, default=None,
                   help="deterministic guest clock: ns per instruction, log2")
    a = p.parse_args()
    os.makedirs(a.log_dir, exist_ok=True)
    a.log_dir = os.path.abspath(a.log_dir)

    if a.suite == "shell":
        accel = "kvm" if a.accel == "kvm" else "tcg"
        os.execvp("qemu-system-x86_64", qemu_cmd(a, accel, True))

    a.append = f"{a.append} attempts={a.attempts}"
    tally = Tally(a.label)
    started = time.monotonic()
    sess = Session(a, tally)
    accel = a.accel
    if accel in ("kvm", "auto"):
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            accel = "tcg"
        else:
            # Some hosts offer a /dev/kvm that cannot boot a stock kernel
            # and hang: give KVM a bounded chance, then fall back to TCG.
            hung = sess.boot("kvm", time.monotonic() + 60)
            if not sess.ready:
                print(f"note [{a.label}] KVM did not boot in 60 s, using TCG",
                      flush=True)
                sess = Session(a, tally)
                accel = "tcg"
            else:
                accel = None
    if accel:
        hung = sess.boot(accel)
    elapsed = time.monotonic() - started

    console_path = os.path.join(a.log_dir, "console.log")
    try:
        with open(console_path, errors="replace") as f:
            console = [ln.rstrip("\r\n") for ln in f]
    except OSError:
        console = []

    if a.suite == "check":
        kunit_results(console, tally)
    if sess.current:
        running = sess.current[0]
        tally.add("FAIL", running, "never finished")
        sess.show_tail()
    if not sess.done:
        why = f"hung: no end after {a.timeout} s" if hung else "guest died"
        if not sess.ready:
            why += " before /init ran"
        tally.add("FAIL", "guest ran the suite to its end", why)
    bad = splats(console)
    if bad:
        tally.add("FAIL", "kernel log free of WARN/BUG/oops/lockdep/KASAN",
                  f"{len(bad)} lines")
        for ln in bad[:10]:
            print(f"    | {ln}", flush=True)
    else:
        tally.add("PASS", "kernel log free of WARN/BUG/oops/lockdep/KASAN")

    print(f"[{a.label}] guest time {elapsed:.0f} s; logs: {a.log_dir}",
          flush=True)
    with open(os.path.join(a.log_dir, "counts"), "w") as f:
        f.write(" ".join(str(tally.counts[k]) for k in ("PASS", "FAIL", "SKIP")))
        f.write("\n")
    print(f"{a.label}: {tally.closing()}", flush=True)
    return 1 if tally.counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
