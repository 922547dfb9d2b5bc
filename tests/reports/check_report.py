#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs one report test program under LD_PRELOAD=libheapguard.so and checks
the report it makes against the contract in docs/report-format.md (the text
and JSON formats of issue #4, PRODUCT.md section 5): how the process ended,
the first line, the access line, the current stack, the region line, the
"allocated by" and "freed by" stacks with their thread numbers, SUMMARY, and
the appended source locations where the mode symbolizes.

    check_report.py --case CASE --mode MODE --preload LIB --program PROG

Standard library only; the script itself is never preloaded (the environment
it builds is given to the program alone). Exit 0 when every check holds,
otherwise 1 with the reasons and the program's whole output.
"""

import argparse
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

FIRST_LINE = re.compile(
    r"^==(\d+)==ERROR: HeapGuard: ([a-z-]+) on address (0x[0-9a-f]+) at pc (0x[0-9a-f]+) thread T(\d+)$")
ACCESS_LINE = re.compile(r"^(READ|WRITE) of size (\d+|\?) at (0x[0-9a-f]+) thread T(\d+)$")
FRAME_LINE = re.compile(r"^    #(\d+) (0x[0-9a-f]+) in (.*)$")
FRAME_WHERE = re.compile(r"^(.*) \(([^()]*)\+(0x[0-9a-f]+)\)$")
HEADING = re.compile(r"^(allocated|freed) by thread T(\d+) here:$")
SUMMARY_LINE = re.compile(r"^SUMMARY: HeapGuard: ([a-z-]+) in (.*)$")
REGION_LINE = re.compile(
    r"^(0x[0-9a-f]+) is located (\d+) bytes? (inside of|to the right of|to the left of) "
    r"(\d+)-byte region \[(0x[0-9a-f]+),(0x[0-9a-f]+)\)")
SOURCE_HEADING = re.compile(r"^==(\d+)==HeapGuard: source locations:$")
SOURCE_SUBHEADING = re.compile(r"^(current|(allocated|freed) by thread T(\d+)):$")
# "FUNCTION FILE:LINE"; FILE:LINE is left out where the symbolizer knows
# none (no debug info), and a demangled FUNCTION may hold spaces.
SOURCE_FRAME_WHERE = re.compile(r"^(.*\S) (\S+):(\d+)(?::\d+)?$")

RELATION_WORDS = {"inside": "inside of", "right": "to the right of", "left": "to the left of"}
# The files the test programs' steps are written in (file:line of a frame).
OUR_SOURCES = {"report_programs.h", "report_classes.c", "report_threads.c", "report_fork.c",
               "report_recoverable.c"}
SYMBOLIZER_PATHS = ["llvm-symbolizer", "llvm-symbolizer-14", "/usr/lib/llvm-14/bin/llvm-symbolizer", "addr2line"]
# Every step function (report_programs.h): none may be exported, or the test
# would not show that static functions of a non-rdynamic program are named.
STEP_FUNCTIONS = ["allocate_block", "allocate_object", "release_block", "release_block_again",
                  "release_with_wrong_family", "release_with_wrong_size", "write_past_end",
                  "write_before_start", "write_after_free", "smash_header", "drain_quarantine_now",
                  "allocate_again", "free_stack_pointer", "free_global_pointer", "free_interior_pointer", "free_wild_pointer"]
SIGABRT_RC = -signal.SIGABRT
RUN_TIMEOUT = 100


class Failure(Exception):
    pass


def require(cond, message):
    if not cond:
        raise Failure(message)


def same_function(name, want):
    """A frame's function is `want`, or a compiler clone of it (want.constprop.0)."""
    return name == want or (name is not None and name.startswith(want + "."))


def real(path):
    return os.path.realpath(path)


# ---------------------------------------------------------------- parsing


class Frame:
    def __init__(self, index, pc, function, module, offset, raw):
        self.index, self.pc, self.function, self.module, self.offset, self.raw = index, pc, function, module, offset, raw

    def __repr__(self):
        return self.raw


class Report:
    """One text report: the lines from its first line up to the next report."""

    def __init__(self):
        self.pid = self.cls = self.address = self.pc = self.thread = None
        self.access = None
        self.current = []
        self.info = []          # lines between the current stack and the headings
        self.stacks = {}        # "allocated"/"freed" -> (thread, [Frame])
        self.heading_order = []
        self.summary = None     # (class, rest)
        self.source = None      # {"current"/"allocated"/"freed": (thread, [(pc, function, file, line)])}
        self.source_order = []
        self.lines = []


def parse_frame(line, expect_index):
    m = FRAME_LINE.match(line)
    require(m is not None, "not a frame line: %r" % line)
    index = int(m.group(1))
    require(index == expect_index, "frame numbers must count up from #0: %r after #%d" % (line, expect_index - 1))
    where = FRAME_WHERE.match(m.group(3))
    if where:
        return Frame(index, int(m.group(2), 16), where.group(1), where.group(2), int(where.group(3), 16), line)
    # `<unknown>` function and module: "in <unknown>" is still a frame.
    return Frame(index, int(m.group(2), 16), m.group(3), None, None, line)


def take_frames(lines, i, frame_re=FRAME_LINE, parse=parse_frame):
    frames = []
    while i < len(lines) and frame_re.match(lines[i]):
        frames.append(parse(lines[i], len(frames)))
        i += 1
    return frames, i


def parse_source_frame(line, expect_index):
    # Not numbered strictly: a symbolizer may expand one pc into its inlined frames.
    m = FRAME_LINE.match(line)
    require(m is not None, "bad source-location frame line %r" % line)
    where = SOURCE_FRAME_WHERE.match(m.group(3))
    if where is None:  # no FILE:LINE; the function may be a demangled name with spaces
        return (int(m.group(2), 16), m.group(3), "", 0)
    return (int(m.group(2), 16), where.group(1), where.group(2), int(where.group(3)))


def parse_report(lines):
    r = Report()
    r.lines = lines
    m = FIRST_LINE.match(lines[0])
    r.pid, r.cls, r.address, r.pc, r.thread = int(m.group(1)), m.group(2), int(m.group(3), 16), int(m.group(4), 16), int(m.group(5))
    i = 1
    if i < len(lines) and ACCESS_LINE.match(lines[i]):
        r.access = ACCESS_LINE.match(lines[i])
        i += 1
    r.current, i = take_frames(lines, i)
    require(r.current, "no current stack under the first line (got %r)" % (lines[i] if i < len(lines) else "end"))
    while i < len(lines) and not HEADING.match(lines[i]) and not SUMMARY_LINE.match(lines[i]):
        require(not FRAME_LINE.match(lines[i]), "a frame line outside any stack: %r" % lines[i])
        r.info.append(lines[i])
        i += 1
    while i < len(lines) and HEADING.match(lines[i]):
        h = HEADING.match(lines[i])
        require(h.group(1) not in r.stacks, "two '%s by' stacks" % h.group(1))
        frames, i = take_frames(lines, i + 1)
        require(frames, "no frames under %r" % h.group(0))
        r.stacks[h.group(1)] = (int(h.group(2)), frames)
        r.heading_order.append(h.group(1))
    require(i < len(lines) and SUMMARY_LINE.match(lines[i]),
            "expected the SUMMARY line after the stacks, got %r" % (lines[i] if i < len(lines) else "end of report"))
    s = SUMMARY_LINE.match(lines[i])
    r.summary = (s.group(1), s.group(2))
    i += 1
    if i < len(lines) and SOURCE_HEADING.match(lines[i]):
        require(int(SOURCE_HEADING.match(lines[i]).group(1)) == r.pid, "source locations under another pid")
        r.source = {}
        i += 1
        while i < len(lines) and SOURCE_SUBHEADING.match(lines[i]):
            h = SOURCE_SUBHEADING.match(lines[i])
            key = "current" if h.group(1) == "current" else h.group(2)
            thread = None if h.group(3) is None else int(h.group(3))
            frames, i = take_frames(lines, i + 1, parse=parse_source_frame)
            r.source[key] = (thread, frames)
            r.source_order.append(key)
    rest = [l for l in lines[i:] if l.strip()]
    require(not rest, "unexpected lines after the report: %r" % rest[:3])
    return r


def split_reports(text):
    """The text reports in `text`, in order; any other non-empty line is an error."""
    lines = text.split("\n")
    for l in lines:
        if "ERROR: HeapGuard:" in l:
            require(FIRST_LINE.match(l), "the first line %r does not read '==PID==ERROR: HeapGuard: <class> on address "
                    "0x... at pc 0x... thread T<n>'" % l)
    starts = [i for i, l in enumerate(lines) if FIRST_LINE.match(l)]
    stray = [l for l in lines[:starts[0] if starts else len(lines)] if l.strip()]
    require(not stray, "output before the first report: %r" % stray[:3])
    reports = []
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        reports.append(parse_report(lines[s:end]))
    return reports


# ---------------------------------------------------------------- expectations


class Expect:
    """What one report must say.

    current: step functions that must be on the current stack, innermost
      first; the first is the one SUMMARY names.
    region: (relation, k, n) for "K bytes <relation> N-byte region", or None
      for no region line.
    info / info_not: regexes one line between the current stack and the
      headings must match / that line must not match.
    alloc / free: functions that must be on the allocation / free stack
      (None: the heading must be absent); *_thread: its thread number.
    """

    def __init__(self, cls, current, region=None, info=None, info_not=None, access=None, thread=0,
                 alloc=None, alloc_thread=0, alloc_optional=False, free=None, free_thread=0):
        self.cls, self.current, self.region, self.info, self.info_not = cls, current, region, info, info_not
        self.access, self.thread = access, thread
        self.alloc, self.alloc_thread, self.alloc_optional = alloc, alloc_thread, alloc_optional
        self.free, self.free_thread = free, free_thread
        self.header = 0  # heap-metadata-corruption: where the program smashed the header


def class_expectation(case, mode):
    """The report of report_classes CASE in MODE (hardened: sample_rate=1)."""
    guarded = mode == "hardened"  # every block in the guarded pool: bad accesses fault at once
    block = ("inside", 0, 32)
    if case == "double_free":
        return Expect("double-free", ["release_block_again"], region=block, alloc=["allocate_block"],
                      free=["release_block"])
    if case == "invalid_free_stack":
        return Expect("invalid-free", ["free_stack_pointer"], info=r"^{addr} .*\bstack\b", info_not=r"global")
    if case == "invalid_free_global":
        return Expect("invalid-free", ["free_global_pointer"], info=r"^{addr} .*\bglobal\b", info_not=r"stack")
    if case == "invalid_free_interior":
        return Expect("invalid-free", ["free_interior_pointer"], region=("inside", 16, 32), alloc=["allocate_block"])
    if case == "invalid_free_wild":
        return Expect("invalid-free", ["free_wild_pointer"], info=r"^0x1000 ", info_not=r"stack|global")
    if case in ("heap_buffer_overflow_right", "heap_buffer_overflow_slack"):
        n = 20 if case.endswith("slack") else 32
        if guarded:
            return Expect("heap-buffer-overflow", ["write_past_end"], region=("right", 0, n), access="WRITE",
                          alloc=["allocate_block"])
        return Expect("heap-buffer-overflow", ["release_block"], region=("right", 0, n), alloc=["allocate_block"])
    if case == "heap_buffer_overflow_left":
        if guarded:
            return Expect("heap-buffer-overflow", ["write_before_start"], region=("left", 1, 32), access="WRITE",
                          alloc=["allocate_block"])
        return Expect("heap-buffer-overflow", ["release_block"], region=("left", 1, 32), alloc=["allocate_block"])
    if case == "heap_use_after_free":
        if guarded:
            return Expect("heap-use-after-free", ["write_after_free"], region=("inside", 5, 32), access="WRITE",
                          alloc=["allocate_block"], free=["release_block"])
        return Expect("heap-use-after-free", ["drain_quarantine_now"], region=("inside", 5, 32),
                      alloc=["allocate_block"], free=["release_block"])
    if case == "heap_use_after_free_reuse":  # debug, fuzz; quarantine_size_mb=0
        return Expect("heap-use-after-free", ["allocate_again"], region=("inside", 5, 32),
                      info=r"handed out again", alloc=["allocate_block"], free=["release_block"])
    if case == "alloc_dealloc_mismatch":
        return Expect("alloc-dealloc-mismatch", ["release_with_wrong_family"], region=block, alloc=["allocate_block"],
                      info=r"^allocated by malloc\(\), released by operator delete$")
    if case == "new_delete_type_mismatch":
        return Expect("new-delete-type-mismatch", ["release_with_wrong_size"], region=block, alloc=["allocate_object"])
    if case == "heap_metadata_corruption":
        # Where the allocation stack is kept
        # outside the header the report may show it; a header it cannot
        # trust is no reason to require it.
        return Expect("heap-metadata-corruption", ["release_block"],
                      info=r"the chunk header at {header} of the block at {addr}\b",
                      alloc=["allocate_block"], alloc_optional=True)
    raise SystemExit("unknown case %s" % case)


# ---------------------------------------------------------------- checks


class Context:
    def __init__(self, args):
        self.mode = args.mode
        self.preload = real(args.preload)
        self.program = real(args.program) if args.program else None
        self.symbolizes = self.mode in ("debug", "fuzz") and any(
            shutil.which(p) or os.path.exists(p) for p in SYMBOLIZER_PATHS)
        self.require_source = False

    def in_heapguard(self, frame):
        return frame.module is not None and real(frame.module) == self.preload

    def in_program(self, frame):
        return frame.module is not None and real(frame.module) == self.program


def find_function(frames, want):
    for k, f in enumerate(frames):
        if same_function(f.function, want):
            return k
    return -1


def check_stack(ctx, frames, wants, what, api_entry_first):
    """`wants` all on `frames`, innermost first, each in the program's module."""
    at = -1
    for want in wants:
        k = find_function(frames, want)
        require(k >= 0, "%s: no frame in %s (frames: %s)" % (what, want, [f.function for f in frames]))
        require(k > at, "%s: %s is not outside %s" % (what, want, frames[at].function if at >= 0 else "?"))
        require(ctx.in_program(frames[k]),
                "%s: %s is named, but not as a frame of %s: %r" % (what, want, ctx.program, frames[k].raw))
        at = k
    # Leading frames in heapguard are dropped except the API entry.
    leading = 0
    while leading < len(frames) and ctx.in_heapguard(frames[leading]):
        leading += 1
    require(leading <= 1, "%s: %d leading frames inside heapguard (only the API entry may stay): %s"
            % (what, leading, [f.raw for f in frames[:leading]]))
    if api_entry_first:
        require(leading == 1, "%s: frame #0 must be the heapguard API entry (malloc, free, operator new...): %r"
                % (what, frames[0].raw))


def region_numbers(line):
    m = REGION_LINE.match(line)
    addr, k, words, n = int(m.group(1), 16), int(m.group(2)), m.group(3), int(m.group(4))
    return addr, k, words, n, int(m.group(5), 16), int(m.group(6), 16)


def check_region(r, expect):
    lines = [l for l in r.info if REGION_LINE.match(l)]
    if expect.region is None:
        require(not lines, "a region line where none is expected: %r" % lines)
        return
    relation, k, n = expect.region
    require(len(lines) == 1, "expected one region line '... is located %d bytes %s %d-byte region [S,E)', got %r"
            % (k, RELATION_WORDS[relation], n, r.info))
    addr, got_k, words, got_n, start, end = region_numbers(lines[0])
    require((got_k, words, got_n) == (k, RELATION_WORDS[relation], n),
            "region line says %r; expected %d bytes %s %d-byte region" % (lines[0], k, RELATION_WORDS[relation], n))
    require(addr == r.address, "the region line's address %#x is not the report's %#x" % (addr, r.address))
    require(end - start == n, "region [%#x,%#x) is not %d bytes" % (start, end, n))
    expect_addr = {"inside": start + k, "right": end + k, "left": start - k}[relation]
    require(addr == expect_addr, "address %#x is not %d bytes %s [%#x,%#x)" % (addr, k, relation, start, end))


def check_info(r, expect):
    if expect.info is None:
        return
    pattern = expect.info.format(addr="0x%x" % r.address, header="0x%x" % expect.header)
    matching = [l for l in r.info if re.search(pattern, l)]
    require(matching, "no line between the stack and the headings matches %r; lines: %r" % (pattern, r.info))
    if expect.info_not:
        require(not re.search(expect.info_not, matching[0]),
                "the line %r must say what the pointer is, and not also /%s/" % (matching[0], expect.info_not))


def check_report(ctx, r, expect, pid):
    require(r.pid == pid, "report from pid %d, expected %d" % (r.pid, pid))
    require(r.cls == expect.cls, "class %s, expected %s" % (r.cls, expect.cls))
    require(r.thread == expect.thread, "first line says thread T%d, expected T%d" % (r.thread, expect.thread))
    if expect.access:
        require(r.access is not None, "no access line ('%s of size N at 0x... thread T%d') after the first line"
                % (expect.access, expect.thread))
        require(r.access.group(1) == expect.access, "access %s, expected %s" % (r.access.group(1), expect.access))
        require(int(r.access.group(3), 16) == r.address, "the access line's address differs from the first line's")
        require(int(r.access.group(4)) == expect.thread, "the access line's thread differs")
    else:
        require(r.access is None, "an access line where none is expected: %r" % (r.access and r.access.group(0)))
    require(r.pc == r.current[0].pc, "'at pc %#x' is not frame #0 of the current stack (%#x)" % (r.pc, r.current[0].pc))
    check_stack(ctx, r.current, expect.current, "current stack", api_entry_first=not expect.access)
    check_region(r, expect)
    check_info(r, expect)
    outside = [f for f in r.current if not ctx.in_heapguard(f)]
    require(outside, "the current stack has no frame outside heapguard")
    first = outside[0]
    require(same_function(first.function, expect.current[0]),
            "the first frame outside heapguard is %r, expected %s" % (first.raw, expect.current[0]))
    summary_cls, summary_rest = r.summary
    require(summary_cls == expect.cls, "SUMMARY names class %s" % summary_cls)
    want_summary = "%s (%s+0x%x)" % (first.function, first.module, first.offset)
    require(summary_rest == want_summary, "SUMMARY says 'in %s', expected 'in %s'" % (summary_rest, want_summary))
    for key, wants, thread, optional in (("allocated", expect.alloc, expect.alloc_thread, expect.alloc_optional),
                                         ("freed", expect.free, expect.free_thread, False)):
        if wants is None:
            require(key not in r.stacks, "a '%s by' stack where none is expected" % key)
            continue
        if optional and key not in r.stacks:
            continue
        require(key in r.stacks, "no '%s by thread T%d here:' stack" % (key, thread))
        got_thread, frames = r.stacks[key]
        require(got_thread == thread, "'%s by thread T%d', expected T%d" % (key, got_thread, thread))
        check_stack(ctx, frames, wants, "%s-by stack" % key, api_entry_first=True)
    if "allocated" in r.stacks and "freed" in r.stacks:
        require(r.heading_order == ["allocated", "freed"], "'allocated by' must come before 'freed by'")
    check_source_locations(ctx, r, expect)


def check_source_locations(ctx, r, expect):
    """The appended source locations, where there are any. They may be
    missing after the fact: the external symbolizer has 2 s, which a loaded
    machine can exceed, so only report.source_locations (which retries)
    requires them."""
    if not ctx.symbolizes:
        if ctx.mode not in ("debug", "fuzz"):
            require(r.source is None, "source locations appended in %s mode, where symbolize defaults to 0" % ctx.mode)
        return
    if r.source is None:
        require(not ctx.require_source, "no '==PID==HeapGuard: source locations:' section (symbolize=1 in %s mode "
                "and a symbolizer is installed)" % ctx.mode)
        return
    wanted = [("current", expect.current, None)]
    if expect.alloc and "allocated" in r.stacks:
        wanted.append(("allocated", expect.alloc, expect.alloc_thread))
    if expect.free:
        wanted.append(("freed", expect.free, expect.free_thread))
    for key, functions, thread in wanted:
        require(key in r.source, "the source locations have no %s stack (got %s)" % (key, r.source_order))
        got_thread, frames = r.source[key]
        require(got_thread == thread, "source locations: '%s by thread T%s', expected T%s" % (key, got_thread, thread))
        raw_pcs = [f.pc for f in (r.current if key == "current" else r.stacks[key][1])]
        for pc, _, _, _ in frames:
            require(pc in raw_pcs, "source locations: %s pc %#x is not in the raw stack" % (key, pc))
        for fn in functions:
            hits = [f for f in frames if same_function(f[1], fn)]
            require(hits, "source locations: no %s in the %s stack: %r" % (fn, key, frames))
            _, _, path, line = hits[0]
            require(os.path.basename(path) in OUR_SOURCES and line > 0,
                    "source locations: %s is at %s:%d, not in the test's sources" % (fn, path, line))


# ---------------------------------------------------------------- running


# The last program run, shown when a check fails.
LAST_RUN = {}


def run(ctx, argv, options=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPGUARD_") and k != "LD_PRELOAD"}
    env["LD_PRELOAD"] = ctx.preload
    env["HEAPGUARD_MODE"] = ctx.mode
    opts = [o for o in (("sample_rate=1" if ctx.mode == "hardened" else ""), options) if o]
    if opts:
        env["HEAPGUARD_OPTIONS"] = ":".join(opts)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    LAST_RUN.update(command="HEAPGUARD_MODE=%s HEAPGUARD_OPTIONS='%s' LD_PRELOAD=%s %s" % (
        ctx.mode, env.get("HEAPGUARD_OPTIONS", ""), ctx.preload, " ".join(argv)),
        rc=proc.returncode, out=out, err=err)
    require(not timed_out, "timed out after %d s" % RUN_TIMEOUT)
    return proc.pid, proc.returncode, out, err, env.get("HEAPGUARD_OPTIONS", "")


def describe_rc(rc):
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %d" % rc


def require_rc(rc, want, out):
    not_detected = [l for l in out.splitlines() if l.startswith("NOT DETECTED")]
    require(not not_detected, "the error was not reported: the program printed %r" % not_detected)
    require(rc != 2, "the program refused to run (heapguard not loaded, or in another mode)")
    require(rc == want, "the process ended with %s, expected %s" % (describe_rc(rc), describe_rc(want)))


def check_not_exported(ctx, program):
    """The programs must be linked without -rdynamic: no step function in .dynsym."""
    nm = shutil.which("nm")
    if nm is None:
        return
    out = subprocess.run([nm, "-D", "--defined-only", program], capture_output=True, text=True).stdout
    exported = [f for f in STEP_FUNCTIONS if re.search(r"\b%s\b" % f, out)]
    require(not exported, "%s exports %s: it was linked with -rdynamic" % (program, exported))


# ---------------------------------------------------------------- cases


def case_class(ctx, case):
    options = {("hardened", "heap_buffer_overflow_left"): "guard_below=1"}.get((ctx.mode, case), "")
    if case == "heap_use_after_free_reuse":
        options = "quarantine_size_mb=0"
    pid, rc, out, err, _ = run(ctx, [ctx.program, case], options)
    require_rc(rc, SIGABRT_RC, out)
    reports = split_reports(err)
    require(len(reports) == 1, "expected one report, got %d" % len(reports))
    expect = class_expectation(case, ctx.mode)
    if case == "heap_metadata_corruption":
        # The header sits in front of the block's 16-byte left redzone.
        m = re.search(r"^block (0x[0-9a-f]+)$", out, re.M)
        require(m is not None, "the program did not print its block's address")
        expect.header = int(m.group(1), 16) - 16 - 8
    check_report(ctx, reports[0], expect, pid)
    return err


def case_exit_instead_of_abort(ctx):
    """abort_on_error=0: the same report, then _exit(exitcode) instead of SIGABRT."""
    pid, rc, out, err, _ = run(ctx, [ctx.program, "double_free"], "abort_on_error=0:exitcode=42")
    require_rc(rc, 42, out)
    reports = split_reports(err)
    require(len(reports) == 1, "expected one report, got %d" % len(reports))
    check_report(ctx, reports[0], class_expectation("double_free", ctx.mode), pid)
    return err


def case_source_locations(ctx):
    """symbolize=1 (debug, fuzz): file:line of every step, in text and JSON.
    A run whose symbolizer missed its 2 s deadline on a loaded machine is
    tried again, up to three runs each."""
    require(ctx.symbolizes, "no llvm-symbolizer or addr2line installed: cannot test source locations")
    for attempt in range(3):
        pid, rc, out, err, _ = run(ctx, [ctx.program, "double_free"])
        require_rc(rc, SIGABRT_RC, out)
        reports = split_reports(err)
        require(len(reports) == 1, "expected one report, got %d" % len(reports))
        ctx.require_source = attempt == 2
        check_report(ctx, reports[0], class_expectation("double_free", ctx.mode), pid)
        if reports[0].source is not None:
            break
    text = err
    for attempt in range(3):
        err = case_json(ctx, "double_free")
        if len([l for l in err.split("\n") if l.strip()]) == 2:
            return text + err
    raise Failure("no source-locations JSON line after the report in three runs")


def case_threads(ctx):
    pid, rc, out, err, _ = run(ctx, [ctx.program])
    require_rc(rc, SIGABRT_RC, out)
    reports = split_reports(err)
    require(len(reports) == 1, "expected one report, got %d" % len(reports))
    expect = Expect("double-free", ["release_block_again", "faulting_thread"], region=("inside", 0, 32), thread=3,
                    alloc=["allocate_block", "allocating_thread"], alloc_thread=1,
                    free=["release_block", "freeing_thread"], free_thread=2)
    check_report(ctx, reports[0], expect, pid)
    return err


def child_pid(out):
    m = re.search(r"^child (\d+) (signal|exit) (\d+)$", out, re.M)
    require(m is not None, "the parent did not say how its child ended: %r" % out)
    require(m.group(2) == "signal" and int(m.group(3)) == signal.SIGABRT,
            "the child ended with %s %s, expected signal SIGABRT" % (m.group(2), m.group(3)))
    return int(m.group(1))


# The child's report, and with "parent-too" the parent's: the same block freed
# a second time by each process.
CHILD_DOUBLE_FREE = Expect("double-free", ["release_block_again"], region=("inside", 0, 32),
                           alloc=["allocate_block"], free=["release_block"])


def case_fork(ctx):
    pid, rc, out, err, _ = run(ctx, [ctx.program])
    require_rc(rc, 0, out)
    child = child_pid(out)
    require(child != pid, "the child's pid is the parent's")
    reports = split_reports(err)
    require(len(reports) == 1, "expected one report (the child's), got %d" % len(reports))
    check_report(ctx, reports[0], CHILD_DOUBLE_FREE, child)
    return err


def log_files(directory):
    return sorted(os.listdir(directory))


def check_log_file(path):
    st = os.lstat(path)
    require(stat.S_ISREG(st.st_mode), "%s is not a regular file" % path)
    require(stat.S_IMODE(st.st_mode) == 0o600, "%s has mode %o, expected 600" % (path, stat.S_IMODE(st.st_mode)))
    require(st.st_uid == os.geteuid(), "%s is not owned by the effective user" % path)
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    LAST_RUN["err"] = LAST_RUN.get("err", "") + "--- %s ---\n%s" % (os.path.basename(path), text)
    return text


def case_log_path(ctx, pattern, name_for_pid):
    with tempfile.TemporaryDirectory(prefix="heapguard-report-") as d:
        pid, rc, out, err, _ = run(ctx, [ctx.program, "double_free"], "log_path=" + os.path.join(d, pattern))
        require_rc(rc, SIGABRT_RC, out)
        require(err == "", "stderr is not empty with log_path set: %r" % err[:2000])
        files = log_files(d)
        require(files == [name_for_pid(pid)], "log directory holds %s, expected [%s]" % (files, name_for_pid(pid)))
        text = check_log_file(os.path.join(d, files[0]))
        reports = split_reports(text)
        require(len(reports) == 1, "expected one report in the log file, got %d" % len(reports))
        check_report(ctx, reports[0], class_expectation("double_free", ctx.mode), pid)
        require(text.endswith("\n"), "the log file does not end with a complete line")
        return text


def case_fork_log_path(ctx):
    with tempfile.TemporaryDirectory(prefix="heapguard-report-") as d:
        pid, rc, out, err, _ = run(ctx, [ctx.program, "parent-too"], "log_path=" + os.path.join(d, "hg"))
        require_rc(rc, SIGABRT_RC, out)
        child = child_pid(out)
        require(err == "", "stderr is not empty with log_path set: %r" % err[:2000])
        files = log_files(d)
        want = sorted(["hg.%d" % pid, "hg.%d" % child])
        require(files == want, "log directory holds %s, expected %s (one file per process)" % (files, want))
        child_reports = split_reports(check_log_file(os.path.join(d, "hg.%d" % child)))
        require(len(child_reports) == 1, "the child's file holds %d reports" % len(child_reports))
        check_report(ctx, child_reports[0], CHILD_DOUBLE_FREE, child)
        parent_text = check_log_file(os.path.join(d, "hg.%d" % pid))
        parent_reports = split_reports(parent_text)
        require(len(parent_reports) == 1, "the parent's file holds %d reports" % len(parent_reports))
        check_report(ctx, parent_reports[0], CHILD_DOUBLE_FREE, pid)
        return parent_text


# JSON: one object per line, checked field by field against issue #4's schema.

JSON_KEYS = ["heapguard", "pid", "class", "address", "pc", "thread", "access", "region", "detail", "stacks", "summary"]
HEX_STRING = re.compile(r"^0x[0-9a-f]+$")


def require_hex(value, what):
    require(isinstance(value, str) and HEX_STRING.match(value), "%s must be a \"0x..\" string, got %r" % (what, value))
    return int(value, 16)


def require_int(value, what):
    require(isinstance(value, int) and not isinstance(value, bool), "%s must be a number, got %r" % (what, value))
    return value


def check_json_frames(ctx, stack, what, wants, thread, api_entry_first):
    require(isinstance(stack, dict), "%s must be an object, got %r" % (what, stack))
    require(require_int(stack.get("thread"), what + ".thread") == thread,
            "%s.thread is %r, expected %d" % (what, stack.get("thread"), thread))
    frames = stack.get("frames")
    require(isinstance(frames, list) and frames, "%s.frames must be a non-empty list" % what)
    parsed = []
    for k, f in enumerate(frames):
        fw = "%s.frames[%d]" % (what, k)
        require(isinstance(f, dict) and set(f) >= {"pc", "function", "module", "offset"},
                "%s must have pc, function, module, offset: %r" % (fw, f))
        pc = require_hex(f["pc"], fw + ".pc")
        off = require_hex(f["offset"], fw + ".offset")
        for key in ("function", "module"):
            require(f[key] is None or isinstance(f[key], str), "%s.%s must be a string or null" % (fw, key))
        parsed.append(Frame(k, pc, f["function"], f["module"], off, json.dumps(f)))
    check_stack(ctx, parsed, wants, what, api_entry_first)
    return parsed


def check_json_report(ctx, obj, expect, pid, raw):
    require(isinstance(obj, dict), "a report line is not a JSON object: %r" % raw)
    missing = [k for k in JSON_KEYS if k not in obj]
    require(not missing, "the JSON report lacks %s" % missing)
    require(obj["heapguard"] == 1, "\"heapguard\" is %r, expected 1" % obj["heapguard"])
    require(obj["pid"] == pid, "\"pid\" is %r, expected %d" % (obj["pid"], pid))
    require(obj["class"] == expect.cls, "\"class\" is %r, expected %s" % (obj["class"], expect.cls))
    address = require_hex(obj["address"], "address")
    pc = require_hex(obj["pc"], "pc")
    require(require_int(obj["thread"], "thread") == expect.thread, "\"thread\" is %r" % obj["thread"])
    if expect.access:
        require(isinstance(obj["access"], str) and obj["access"].startswith(expect.access + " of size "),
                "\"access\" is %r, expected \"%s of size ...\"" % (obj["access"], expect.access))
    else:
        require(obj["access"] is None, "\"access\" is %r, expected null" % obj["access"])
    region = obj["region"]
    if expect.region is None:
        require(region is None, "\"region\" is %r, expected null" % region)
    else:
        relation, k, n = expect.region
        require(isinstance(region, dict), "\"region\" is %r, expected an object" % region)
        start = require_hex(region.get("start"), "region.start")
        require(require_int(region.get("size"), "region.size") == n, "region.size is %r, expected %d" % (region.get("size"), n))
        require(region.get("relation") == relation, "region.relation is %r, expected %s" % (region.get("relation"), relation))
        require(require_int(region.get("offset"), "region.offset") == k, "region.offset is %r, expected %d" % (region.get("offset"), k))
        want = {"inside": start + k, "right": start + n + k, "left": start - k}[relation]
        require(address == want, "address %#x is not %d bytes %s the region at %#x" % (address, k, relation, start))
    require(obj["detail"] is None or isinstance(obj["detail"], str), "\"detail\" must be a string or null")
    if expect.info:
        text = obj["detail"] or ""
        pattern = expect.info.format(addr="0x%x" % address, header="0x%x" % expect.header).lstrip("^")
        require(re.search(pattern, text), "\"detail\" %r does not match %r" % (text, pattern))
    stacks = obj["stacks"]
    require(isinstance(stacks, dict) and set(stacks) >= {"current", "allocated", "freed"},
            "\"stacks\" must have current, allocated and freed: %r" % stacks)
    current = check_json_frames(ctx, stacks["current"], "stacks.current", expect.current, expect.thread,
                                api_entry_first=not expect.access)
    require(pc == current[0].pc, "\"pc\" %#x is not stacks.current.frames[0].pc %#x" % (pc, current[0].pc))
    for key, wants, thread in (("allocated", expect.alloc, expect.alloc_thread), ("freed", expect.free, expect.free_thread)):
        if wants is None:
            require(stacks[key] is None, "stacks.%s is %r, expected null" % (key, stacks[key]))
        else:
            check_json_frames(ctx, stacks[key], "stacks." + key, wants, thread, api_entry_first=True)
    summary = obj["summary"]
    require(isinstance(summary, str) and expect.cls in summary and re.search(r"\b%s\b" % expect.current[0], summary),
            "\"summary\" %r does not name %s and %s" % (summary, expect.cls, expect.current[0]))


def check_json_source_locations(ctx, obj, expect, pid):
    require(isinstance(obj, dict) and obj.get("type") == "source-locations",
            "the second JSON line must be the source-locations object, got %r" % obj)
    require(obj.get("heapguard") == 1 and obj.get("pid") == pid, "source-locations: heapguard/pid wrong: %r" % obj)
    frames = obj.get("frames")
    require(isinstance(frames, list) and frames, "source-locations: frames must be a non-empty list")
    for k, f in enumerate(frames):
        require(isinstance(f, dict) and set(f) >= {"pc", "function", "file", "line"},
                "source-locations frames[%d] must have pc, function, file, line: %r" % (k, f))
        require_hex(f["pc"], "source-locations frames[%d].pc" % k)
    for fn in expect.current + (expect.alloc or []) + (expect.free or []):
        hits = [f for f in frames if same_function(f["function"], fn)]
        require(hits, "source-locations: no frame in %s" % fn)
        f = hits[0]
        require(isinstance(f["file"], str) and os.path.basename(f["file"]) in OUR_SOURCES
                and isinstance(f["line"], int) and f["line"] > 0,
                "source-locations: %s at %r:%r, not in the test's sources" % (fn, f["file"], f["line"]))


def case_json(ctx, case):
    pid, rc, out, err, _ = run(ctx, [ctx.program, case], "report_format=json")
    require_rc(rc, SIGABRT_RC, out)
    lines = [l for l in err.split("\n") if l.strip()]
    objects = []
    for l in lines:
        try:
            objects.append(json.loads(l))
        except ValueError as e:
            raise Failure("stderr line is not JSON (%s): %r" % (e, l))
    expect = class_expectation(case, ctx.mode)
    require(objects, "no JSON report on stderr")
    check_json_report(ctx, objects[0], expect, pid, lines[0])
    if ctx.symbolizes and len(objects) == 2:  # see check_source_locations: may be missing
        check_json_source_locations(ctx, objects[1], expect, pid)
    else:
        require(len(objects) == 1, "expected one JSON line, got %d" % len(objects))
    return err


# halt_on_error=0 and suppressions: report_recoverable makes three errors.

RECOVERABLE = [
    ("alloc-dealloc-mismatch", Expect("alloc-dealloc-mismatch", ["release_with_wrong_family"], region=("inside", 0, 32),
                                      alloc=["allocate_block"])),
    ("invalid-free", Expect("invalid-free", ["free_interior_pointer"], region=("inside", 16, 64),
                            alloc=["allocate_block"])),
    ("double-free", Expect("double-free", ["release_block_again"], region=("inside", 0, 48), alloc=["allocate_block"],
                           free=["release_block"])),
]


def check_recoverable_run(ctx, options, suppressed, halts, exitcode=23):
    pid, rc, out, err, _ = run(ctx, [ctx.program], options)
    shown = [(cls, e) for cls, e in RECOVERABLE if cls not in suppressed]
    if halts:
        shown = shown[:1]
        require_rc(rc, SIGABRT_RC, out)
        require("reached the end" not in out, "the program went on after a report with halt_on_error=1")
    else:
        require_rc(rc, exitcode, out)
        require(out == "reached the end\n", "the program did not run to its end: stdout %r" % out)
    reports = split_reports(err)
    require([r.cls for r in reports] == [cls for cls, _ in shown],
            "reports %s, expected %s" % ([r.cls for r in reports], [cls for cls, _ in shown]))
    for r, (_, expect) in zip(reports, shown):
        check_report(ctx, r, expect, pid)
    for cls in suppressed:
        require(cls not in err, "the suppressed %s still shows on stderr" % cls)
    return err


def with_suppressions(ctx, lines, options, suppressed, halts):
    with tempfile.TemporaryDirectory(prefix="heapguard-supp-") as d:
        path = os.path.join(d, "heapguard.supp")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        opts = "suppressions=" + path + (":" + options if options else "")
        return check_recoverable_run(ctx, opts, suppressed, halts)


SUPPRESS_BY_FUNCTION = ["# a third-party bug we cannot fix here", "",
                        "alloc-dealloc-mismatch:release_with_wrong_family"]
SUPPRESS_BY_WILDCARD = ["*:release_with_wrong_*"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", required=True)
    ap.add_argument("--mode", required=True, choices=["fast", "hardened", "debug", "fuzz"])
    ap.add_argument("--preload", required=True)
    ap.add_argument("--program", required=True)
    args = ap.parse_args()
    ctx = Context(args)
    c = args.case
    try:
        require(os.path.exists(ctx.preload), "no library at %s" % ctx.preload)
        check_not_exported(ctx, ctx.program)
        if c == "threads":
            shown = case_threads(ctx)
        elif c == "fork":
            shown = case_fork(ctx)
        elif c == "fork_log_path":
            shown = case_fork_log_path(ctx)
        elif c == "log_path":
            shown = case_log_path(ctx, "hg", lambda pid: "hg.%d" % pid)
        elif c == "log_path_pattern":
            shown = case_log_path(ctx, "hg-%p.log", lambda pid: "hg-%d.log" % pid)
        elif c.startswith("json_"):
            shown = case_json(ctx, c[len("json_"):])
        elif c == "source_locations":
            shown = case_source_locations(ctx)
        elif c == "exit_instead_of_abort":
            shown = case_exit_instead_of_abort(ctx)
        elif c == "halt_on_error":
            shown = check_recoverable_run(ctx, "halt_on_error=0:exitcode=23", [], halts=False)
        elif c == "suppression":
            shown = with_suppressions(ctx, SUPPRESS_BY_FUNCTION, "halt_on_error=0:exitcode=23",
                                      ["alloc-dealloc-mismatch"], halts=False)
        elif c == "suppression_wildcard":
            shown = with_suppressions(ctx, SUPPRESS_BY_WILDCARD, "halt_on_error=0:exitcode=23",
                                      ["alloc-dealloc-mismatch"], halts=False)
        elif c == "suppression_halt":
            shown = with_suppressions(ctx, SUPPRESS_BY_FUNCTION, "", ["alloc-dealloc-mismatch"], halts=True)
        else:
            shown = case_class(ctx, c)
    except Failure as e:
        print("FAIL report.%s.%s: %s" % (c, args.mode, e))
        if LAST_RUN:
            print("command: %s\nended with: %s\n--- stdout ---\n%s--- stderr ---\n%s--- end ---" % (
                LAST_RUN["command"], describe_rc(LAST_RUN["rc"]), LAST_RUN["out"], LAST_RUN["err"]))
        sys.stdout.flush()
        raise SystemExit(1)
    print("ok report.%s.%s" % (c, args.mode))
    print(shown)


if __name__ == "__main__":
    main()
