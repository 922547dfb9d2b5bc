#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs one fault case of fault_cases under LD_PRELOAD=libheapguard.so and
checks how it ended and what it wrote.

  run_fault.py --preload SO --program P --case C [--size N] [--env K=V ...]
      (--signal NAME | --rc N) [--error CLASS] [--access READ|WRITE]
      [--frame0 FUNC] [--region REGEX] [--allocated FUNC] [--freed FUNC]
      [--no-freed] [--stdout REGEX] [--forbid REGEX ...] [--detail REGEX]

--error checks the first report line ("==PID==ERROR: HeapGuard: CLASS on
address 0x... at pc 0x... thread T0"); --frame0 that frame #0 of the current
(access) stack, the frames right after that line and the access line, is in
FUNC; --allocated/--freed that the "allocated by thread T0 here:" / "freed by
thread T0 here:" stacks contain FUNC. Exit 0 on success; otherwise the
output and every failed check are printed and the exit status is 1.
"""
import argparse
import os
import re
import signal
import subprocess
import sys

FRAME = re.compile(r"^\s+#(\d+) 0x[0-9a-f]+ in (\S+)")


def frames_after(lines, start, allow_leading):
    """Frames following lines[start]; up to allow_leading non-frame lines
    (the access line) may come first."""
    out = []
    i = start + 1
    skipped = 0
    while i < len(lines):
        m = FRAME.match(lines[i])
        if m:
            out.append((int(m.group(1)), m.group(2)))
        elif out or skipped >= allow_leading:
            break
        else:
            skipped += 1
        i += 1
    return out


def find_line(lines, regex):
    for i, line in enumerate(lines):
        if re.search(regex, line):
            return i
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preload", required=True)
    ap.add_argument("--program", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--size")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--signal")
    ap.add_argument("--rc", type=int)
    ap.add_argument("--error")
    ap.add_argument("--access")
    ap.add_argument("--frame0")
    ap.add_argument("--region")
    ap.add_argument("--detail")
    ap.add_argument("--allocated")
    ap.add_argument("--freed")
    ap.add_argument("--no-freed", action="store_true")
    ap.add_argument("--stdout")
    ap.add_argument("--forbid", action="append", default=[])
    a = ap.parse_args()

    env = dict(os.environ)
    for k in ("HEAPGUARD_OPTIONS", "HEAPGUARD_MODE", "LD_PRELOAD"):
        env.pop(k, None)
    env["LD_PRELOAD"] = a.preload
    # Symbolized source lines are appended after the raw report; not needed
    # here, and skipping them keeps the run short.
    options = ["symbolize=0"]
    for kv in a.env:
        k, v = kv.split("=", 1)
        if k == "HEAPGUARD_OPTIONS":
            options.append(v)
        else:
            env[k] = v
    env["HEAPGUARD_OPTIONS"] = ":".join(options)
    cmd = [a.program, a.case] + ([a.size] if a.size else [])
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    lines = err.splitlines()
    failures = []

    if a.signal is not None:
        want = -int(getattr(signal, a.signal))
        if p.returncode != want:
            failures.append("ended with status %d, want signal %s" % (p.returncode, a.signal))
    if a.rc is not None and p.returncode != a.rc:
        failures.append("exit status %d, want %d" % (p.returncode, a.rc))

    first = -1
    if a.error is not None:
        first = find_line(lines, r"^==\d+==ERROR: HeapGuard: %s on address 0x[0-9a-f]+ at pc 0x[0-9a-f]+ thread T\d+$"
                          % re.escape(a.error))
        if first < 0:
            failures.append("no first line for class %s" % a.error)
    if a.access is not None:
        if first < 0 or first + 1 >= len(lines) or not re.match(r"^%s of size \S+ at 0x[0-9a-f]+ thread T\d+$" % a.access,
                                                                   lines[first + 1]):
            failures.append("no %s access line after the first line" % a.access)
    if a.frame0 is not None:
        frames = frames_after(lines, first, 1) if first >= 0 else []
        if not frames or frames[0][0] != 0 or frames[0][1] != a.frame0:
            failures.append("current stack frame #0 is %s, want %s" % (frames[0] if frames else None, a.frame0))
    if a.region is not None and find_line(lines, a.region) < 0:
        failures.append("no region line matching %r" % a.region)
    if a.detail is not None and find_line(lines, a.detail) < 0:
        failures.append("no detail line matching %r" % a.detail)
    for heading, func in (("allocated by thread T\\d+ here:", a.allocated), ("freed by thread T\\d+ here:", a.freed)):
        if func is None:
            continue
        at = find_line(lines, "^" + heading + "$")
        names = [f[1] for f in frames_after(lines, at, 0)] if at >= 0 else []
        if func not in names:
            failures.append("%r stack %s lacks %s" % (heading, names, func))
    if a.no_freed and find_line(lines, r"^freed by thread") >= 0:
        failures.append("a freed-by stack where none belongs")
    if a.stdout is not None and not re.search(a.stdout, out):
        failures.append("stdout does not match %r" % a.stdout)
    for f in a.forbid:
        if re.search(f, err, re.M) or re.search(f, out, re.M):
            failures.append("output matches forbidden %r" % f)

    if failures:
        print("command: %s" % " ".join(cmd))
        print("HEAPGUARD_OPTIONS=%s status %d" % (env["HEAPGUARD_OPTIONS"], p.returncode))
        print("--- stdout\n%s--- stderr\n%s---" % (out, err))
        for f in failures:
            print("FAIL: " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
