#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Tests of tools/heapguard-run and tools/heapguard-symbolize, run as users run
# them (the scripts executed directly, the real libheapguard.so preloaded into
# real programs). Each CASE is one CTest test. The programs under test are
# tiny C files written into the work directory and built with -O1 -g and
# without -rdynamic; every one of them exits 1 unless heapguard is really
# loaded, so no case passes by running under glibc.

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ARGS = None

# Exits 1 unless heapguard is the allocator (so a missing preload fails).
LOADED_CHECK = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
static int heapguard_loaded(void) {
  int (*owns)(const void*) = (int (*)(const void*))dlsym(RTLD_DEFAULT, "heapguard_owns");
  void* p = malloc(8);
  int ok = owns != NULL && owns(p);
  free(p);
  if (!ok) fprintf(stderr, "heapguard is not loaded\n");
  return ok;
}
"""

CLEAN_C = LOADED_CHECK + r"""
int main(void) {
  if (!heapguard_loaded()) return 1;
  char* p = malloc(32);
  snprintf(p, 32, "clean");
  puts(p);
  free(p);
  return 0;
}
"""

# The allocation and both frees happen in distinct named functions; the
# markers let the test find the lines the symbolized report must name.
DOUBLE_FREE_C = LOADED_CHECK + r"""
__attribute__((noinline)) char* make_block(size_t n) {
  return malloc(n);  /* MARK_ALLOC */
}
__attribute__((noinline)) void release_block(char* p) {
  free(p);  /* MARK_FREE */
}
int main(int argc, char** argv) {
  if (!heapguard_loaded()) return 1;
  int times = argc > 1 ? atoi(argv[1]) : 1;
  for (int i = 0; i < times; ++i) {
    char* p = make_block(24);
    release_block(p);
    release_block(p);
  }
  return 0;
}
"""

PROJECT_CMAKE = """\
cmake_minimum_required(VERSION 3.16)
project(heapguard_run_demo C)
set(CMAKE_C_FLAGS "-O1 -g")
add_executable(clean_prog clean.c)
add_executable(double_free_prog double_free.c)
target_link_libraries(clean_prog PRIVATE ${CMAKE_DL_LIBS})
target_link_libraries(double_free_prog PRIVATE ${CMAKE_DL_LIBS})
enable_testing()
add_test(NAME clean_test COMMAND clean_prog)
add_test(NAME double_free_test COMMAND double_free_prog)
"""


class Failure(Exception):
    pass


def check(cond, message, detail=None):
    if not cond:
        if detail is not None:
            message += "\n--- output ---\n" + detail
        raise Failure(message)


def clean_env(**extra):
    """The environment for the tools: nothing of heapguard's own, so the
    runner's defaults are what is tested."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEAPGUARD_") and k != "LD_PRELOAD"}
    # heapguard-run's default log directory lands here, never in /tmp.
    env["TMPDIR"] = os.path.join(ARGS.work, "tmp")
    env.update(extra)
    return env


def run(argv, env=None, cwd=None, input_text=None, timeout=300):
    p = subprocess.run(argv, env=env if env is not None else clean_env(), cwd=cwd,
                       input=input_text, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def both(out, err):
    return "[stdout]\n%s\n[stderr]\n%s" % (out, err)


def work_dir(name):
    d = os.path.join(ARGS.work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def build_program(d, name, source, extra_flags=()):
    src = os.path.join(d, name + ".c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(d, name)
    rc, out, err = run([ARGS.cc, "-O1", "-g", *extra_flags, src, "-o", exe, "-ldl"], env=os.environ.copy())
    check(rc == 0, "compiling %s failed" % src, both(out, err))
    return exe


def marker_line(source, marker):
    for n, line in enumerate(source.split("\n"), 1):
        if marker in line:
            return n
    raise AssertionError(marker)


def heapguard_run(args, **kw):
    return run([ARGS.run, "--lib", ARGS.lib] + args, **kw)


# --- heapguard-run -----------------------------------------------------------

def case_run_args():
    """Bad arguments get a usage error (status 2) naming the problem."""
    bad = [
        ([], "no command given"),
        (["--"], "no command given"),
        (["--mode", "turbo", "--", "true"], "--mode 'turbo' is not one of fast|hardened|debug|fuzz"),
        (["--mode"], "--mode needs a value"),
        (["--frobnicate", "--", "true"], "unknown option '--frobnicate'"),
        (["--options", "log_path=/tmp/x", "--", "true"], "log_path is set by heapguard-run; use --log DIR"),
        (["--mode", "debug", "--mode", "fast", "--", "true"], "--mode given twice"),
    ]
    for args, expected in bad:
        rc, out, err = run([ARGS.run] + args)
        check(rc == 2, "heapguard-run %s: status %d, expected 2" % (args, rc), both(out, err))
        check(expected in err, "heapguard-run %s: stderr lacks %r" % (args, expected), both(out, err))
        check("usage: heapguard-run" in err, "heapguard-run %s: no usage line" % args, both(out, err))
    rc, out, err = run([ARGS.run, "--help"])
    check(rc == 0 and "usage: heapguard-run" in out, "--help", both(out, err))

    # A missing library: refused, saying where it looked.
    missing = os.path.join(ARGS.work, "no-such-dir", "libheapguard.so")
    rc, out, err = run([ARGS.run, "--lib", missing, "--", "true"])
    check(rc != 0 and "libheapguard.so not found" in err and missing in err,
          "--lib with a missing file must be refused naming it", both(out, err))
    rc, out, err = run([ARGS.run, "--", "true"], env=clean_env(HEAPGUARD_LIB=missing))
    check(rc != 0 and "$HEAPGUARD_LIB=" + missing in err,
          "$HEAPGUARD_LIB naming a missing file must be refused naming it", both(out, err))
    # A copy of the script with no build tree or install prefix around it.
    lonely = work_dir("lonely")
    os.makedirs(os.path.join(lonely, "tools"))
    script = os.path.join(lonely, "tools", "heapguard-run")
    shutil.copy2(ARGS.run, script)
    rc, out, err = run([script, "--", "true"])
    check(rc != 0 and os.path.join(lonely, "build", "libheapguard.so") in err
          and os.path.join(lonely, "lib*", "libheapguard.so") in err,
          "with no library anywhere, the refusal must list the places looked at", both(out, err))

    rc, out, err = heapguard_run(["--", os.path.join(ARGS.work, "no-such-command")])
    check(rc == 127 and "command not found" in err, "a missing command: status 127", both(out, err))


def case_run_library_lookup():
    """The library is found next to the script: ../build (source tree) and
    ../lib*/ (install prefix, also lib/<multiarch>/)."""
    d = work_dir("lookup")
    layouts = {
        "tree": ("tools", "build"),
        "prefix": ("bin", "lib"),
        "multiarch": ("bin", os.path.join("lib", "x86_64-linux-gnu")),
    }
    for name, (bindir, libdir) in layouts.items():
        root = os.path.join(d, name)
        os.makedirs(os.path.join(root, bindir))
        os.makedirs(os.path.join(root, libdir))
        script = os.path.join(root, bindir, "heapguard-run")
        shutil.copy2(ARGS.run, script)
        lib = os.path.join(root, libdir, "libheapguard.so")
        shutil.copy2(ARGS.lib, lib)
        rc, out, err = run([script, "--", "printenv", "LD_PRELOAD"])
        check(rc == 0 and out.strip() == lib, "%s layout: LD_PRELOAD should be %s" % (name, lib), both(out, err))
    # $HEAPGUARD_LIB beats the layout.
    rc, out, err = run([os.path.join(d, "tree", "tools", "heapguard-run"), "--", "printenv", "LD_PRELOAD"],
                       env=clean_env(HEAPGUARD_LIB=ARGS.lib))
    check(rc == 0 and out.strip() == os.path.abspath(ARGS.lib), "$HEAPGUARD_LIB first", both(out, err))


def case_run_environment():
    """The mode, the options with log_path, and the user's LD_PRELOAD kept."""
    rc, out, err = heapguard_run(["--", "printenv", "HEAPGUARD_MODE"])
    check(rc == 0 and out.strip() == "debug", "default mode debug", both(out, err))
    rc, out, err = heapguard_run(["--mode", "fuzz", "--", "printenv", "HEAPGUARD_MODE"])
    check(rc == 0 and out.strip() == "fuzz", "--mode fuzz", both(out, err))
    rc, out, err = run([ARGS.run, "--lib", ARGS.lib, "--", "printenv", "HEAPGUARD_MODE"],
                       env=clean_env(HEAPGUARD_MODE="hardened"))
    check(rc == 0 and out.strip() == "hardened", "$HEAPGUARD_MODE kept without --mode", both(out, err))

    log = os.path.join(work_dir("environment"), "logs")
    rc, out, err = heapguard_run(["--options", "verbosity=0", "--log", log, "--", "printenv", "HEAPGUARD_OPTIONS"])
    check(rc == 0 and out.strip() == "verbosity=0:log_path=%s/heapguard.%%p" % log, "HEAPGUARD_OPTIONS",
          both(out, err))
    check(os.path.isdir(log), "--log DIR is created")

    other = "/nonexistent/libother.so"
    rc, out, err = run([ARGS.run, "--lib", ARGS.lib, "--", "printenv", "LD_PRELOAD"],
                       env=clean_env(LD_PRELOAD=other))
    check(rc == 0 and out.strip() == "%s %s" % (os.path.abspath(ARGS.lib), other),
          "heapguard first in LD_PRELOAD, the user's entry kept", both(out, err))

    # The command's own status passes through; a signal death is 128+N.
    rc, out, err = heapguard_run(["--", "sh", "-c", "exit 3"])
    check(rc == 3, "exit status 3 passes through (got %d)" % rc, both(out, err))
    rc, out, err = heapguard_run(["--", "sh", "-c", "kill -TERM $$"])
    check(rc == 128 + signal.SIGTERM, "a signal death gives 128+N (got %d)" % rc, both(out, err))


def case_run_signals():
    """SIGTERM and SIGINT sent to heapguard-run reach the command."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = subprocess.Popen([ARGS.run, "--lib", ARGS.lib, "--", "sleep", "60"], env=clean_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             restore_signals=True)
        time.sleep(1.0)
        start = time.time()
        p.send_signal(sig)
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            raise Failure("%s was not forwarded: the command kept running" % sig.name)
        check(p.returncode == 128 + sig, "%s: status %d, expected %d" % (sig.name, p.returncode, 128 + sig),
              both(out, err))
        check(time.time() - start < 20, "%s forwarded promptly" % sig.name)


def case_run_clean():
    """A clean command: status 0, 'no errors', no report files left over,
    and no temporary log directory either."""
    d = work_dir("clean")
    exe = build_program(d, "clean", CLEAN_C)
    tmp = os.path.join(d, "tmp")
    os.makedirs(tmp)
    rc, out, err = heapguard_run(["--", exe], env=clean_env(TMPDIR=tmp))
    check(rc == 0 and "heapguard-run: no errors" in err, "clean program without --log", both(out, err))
    check(os.listdir(tmp) == [], "the temporary log directory is removed after a clean run: %s" % os.listdir(tmp))
    log = os.path.join(d, "logs")
    rc, out, err = heapguard_run(["--log", log, "--", exe])
    check(rc == 0, "clean program under heapguard-run: status %d" % rc, both(out, err))
    check("clean" in out, "the command's stdout passes through", both(out, err))
    check("heapguard-run: no errors" in err, "no 'no errors' line", both(out, err))
    check(os.listdir(log) == [], "no report file for a clean run", both(out, err))


def summary_re(errors, processes, classes):
    return re.compile(r"^heapguard-run: %d errors? in %d process(es)?: %s$"
                      % (errors, processes, re.escape(classes)), re.M)


def case_run_ctest():
    """heapguard-run -- ctest on a project with a clean and a failing test."""
    d = work_dir("ctest_project")
    src = os.path.join(d, "src")
    os.makedirs(src)
    for name, text in (("CMakeLists.txt", PROJECT_CMAKE), ("clean.c", CLEAN_C),
                       ("double_free.c", DOUBLE_FREE_C)):
        with open(os.path.join(src, name), "w") as f:
            f.write(text)
    build = os.path.join(d, "build")
    env = clean_env(CC=ARGS.cc)
    rc, out, err = run([ARGS.cmake, "-S", src, "-B", build], env=env)
    check(rc == 0, "configuring the demo project failed", both(out, err))
    rc, out, err = run([ARGS.cmake, "--build", build], env=env)
    check(rc == 0, "building the demo project failed", both(out, err))

    log = os.path.join(d, "logs")
    rc, out, err = heapguard_run(["--log", log, "--", ARGS.ctest, "--output-on-failure"], cwd=build)
    detail = both(out, err)
    check(rc != 0, "heapguard-run -- ctest must fail when a test hits a double free", detail)
    check(re.search(r"clean_test \.+\s+Passed", out), "the clean test passes under heapguard", detail)
    check(re.search(r"double_free_test \.+.*(Failed|Exception|Child aborted)", out),
          "the double-free test fails", detail)
    check(summary_re(1, 1, "1 double-free").search(err),
          "summary line 'heapguard-run: 1 error in 1 process: 1 double-free' missing", detail)
    files = [f for f in os.listdir(log) if f.startswith("heapguard.")]
    check(len(files) == 1, "one report file in --log DIR (got %s)" % files, detail)
    report = os.path.join(log, files[0])
    with open(report) as f:
        text = f.read()
    check(re.search(r"^==\d+==ERROR: HeapGuard: double-free on address 0x[0-9a-f]+", text, re.M),
          "the report file holds the double-free report", text)
    check(report in err, "the summary names the report file", detail)
    check("ERROR: HeapGuard: double-free" in err, "the report is printed at the end", detail)


def case_run_many():
    """Several processes, halt_on_error=0 (every report of a process) and
    JSON reports are all collected and counted."""
    d = work_dir("many")
    exe = build_program(d, "double_free", DOUBLE_FREE_C)
    rc, out, err = heapguard_run(["--log", os.path.join(d, "two"), "--", "sh", "-c", '"$0"; "$0"; exit 0', exe])
    check(rc == 1, "errors reported, command status 0: heapguard-run exits 1 (got %d)" % rc, both(out, err))
    check(summary_re(2, 2, "2 double-free").search(err), "two processes, one error each", both(out, err))

    rc, out, err = heapguard_run(["--options", "halt_on_error=0", "--log", os.path.join(d, "halt"), "--", exe, "3"])
    check(rc != 0, "halt_on_error=0: still a nonzero status", both(out, err))
    check(summary_re(3, 1, "3 double-free").search(err), "halt_on_error=0: all three errors counted",
          both(out, err))

    log = os.path.join(d, "json")
    rc, out, err = heapguard_run(["--options", "report_format=json", "--log", log, "--", exe])
    check(rc != 0 and summary_re(1, 1, "1 double-free").search(err), "JSON reports counted", both(out, err))
    files = os.listdir(log)
    check(len(files) == 1, "one JSON report file", both(out, err))
    with open(os.path.join(log, files[0])) as f:
        objs = [json.loads(l) for l in f if l.strip()]
    check(any(o.get("class") == "double-free" for o in objs), "the file holds the JSON report", repr(objs))


# --- heapguard-symbolize --------------------------------------------------------

def report_of(exe, fmt):
    """Runs exe under heapguard with symbolize=0 (raw frames only) and
    returns the report text from log_path."""
    log = os.path.join(os.path.dirname(exe), "logs-" + fmt)
    shutil.rmtree(log, ignore_errors=True)
    os.makedirs(log)
    rc, out, err = heapguard_run(["--options", "symbolize=0:report_format=" + fmt, "--log", log, "--", exe])
    check(rc != 0, "the double free must be reported", both(out, err))
    files = os.listdir(log)
    check(len(files) == 1, "one report file expected, got %s" % files, both(out, err))
    with open(os.path.join(log, files[0])) as f:
        return f.read()


def case_symbolize_text():
    d = work_dir("symbolize_text")
    exe = build_program(d, "double_free", DOUBLE_FREE_C)
    src = exe + ".c"
    report = report_of(exe, "text")
    raw = re.search(r"^\s*#\d+ 0x[0-9a-f]+ in \S+ \(%s\+0x[0-9a-f]+\)$" % re.escape(exe), report, re.M)
    check(raw, "the raw report names frames of the program as (MODULE+0xOFF)", report)
    free_line = marker_line(DOUBLE_FREE_C, "MARK_FREE")
    alloc_line = marker_line(DOUBLE_FREE_C, "MARK_ALLOC")
    for extra in ([], ["--symbolizer", "addr2line"]):
        rc, out, err = run([ARGS.symbolize] + extra, input_text=report)
        detail = both(out, err) + "\n[report]\n" + report
        check(rc in (0, 1), "heapguard-symbolize %s failed (status %d)" % (extra, rc), detail)
        current, _, rest = out.partition("allocated by thread")
        check(re.search(r"#\d+ 0x[0-9a-f]+ in release_block %s:%d$" % (re.escape(src), free_line), current, re.M),
              "%s: the current stack names release_block %s:%d" % (extra, src, free_line), detail)
        check(re.search(r"#\d+ 0x[0-9a-f]+ in main %s:\d+$" % re.escape(src), current, re.M),
              "%s: the current stack names main with its line" % extra, detail)
        alloc, _, freed = rest.partition("freed by thread")
        check(re.search(r"#\d+ 0x[0-9a-f]+ in make_block %s:%d$" % (re.escape(src), alloc_line), alloc, re.M),
              "%s: the allocation stack names make_block %s:%d" % (extra, src, alloc_line), detail)
        check(re.search(r"#\d+ 0x[0-9a-f]+ in release_block %s:%d$" % (re.escape(src), free_line), freed, re.M),
              "%s: the free stack names release_block %s:%d" % (extra, src, free_line), detail)
        check(re.search(r"^SUMMARY: HeapGuard: double-free %s:%d in release_block$" % (re.escape(src), free_line),
                        out, re.M), "%s: the SUMMARY line gets file:line" % extra, detail)

    # The same from a file argument; and a module that is gone is named.
    path = os.path.join(d, "report.txt")
    with open(path, "w") as f:
        f.write(report)
    rc, out, err = run([ARGS.symbolize, path])
    check(rc in (0, 1) and "release_block %s:%d" % (src, free_line) in out, "a report file as argument",
          both(out, err))
    os.rename(exe, exe + ".moved")
    rc, out, err = run([ARGS.symbolize, path])
    check(rc == 1 and "%s: module not found" % exe in err, "a missing module is named, status 1", both(out, err))
    for line in report.splitlines():
        if "(%s+0x" % exe in line:
            check(line in out.splitlines(), "frames of a missing module are left as they are: %r" % line,
                  both(out, err))


def case_symbolize_json():
    d = work_dir("symbolize_json")
    exe = build_program(d, "double_free", DOUBLE_FREE_C)
    src = exe + ".c"
    report = report_of(exe, "json")
    rc, out, err = run([ARGS.symbolize, "--json"], input_text=report)
    detail = both(out, err) + "\n[report]\n" + report
    check(rc in (0, 1), "heapguard-symbolize --json failed (status %d)" % rc, detail)
    objs = [json.loads(l) for l in out.splitlines() if l.strip()]
    errors = [o for o in objs if o.get("class") == "double-free"]
    check(len(errors) == 1, "one double-free object in the output", detail)
    stacks = errors[0]["stacks"]

    def has(stack, function, line):
        return any(f.get("function") == function and f.get("file") == src and f.get("line") == line
                   for f in (stacks.get(stack) or {}).get("frames", []))

    free_line = marker_line(DOUBLE_FREE_C, "MARK_FREE")
    check(has("current", "release_block", free_line), "current stack: release_block with file and line", detail)
    check(has("allocated", "make_block", marker_line(DOUBLE_FREE_C, "MARK_ALLOC")),
          "allocated stack: make_block with file and line", detail)
    check(has("freed", "release_block", free_line), "freed stack: release_block with file and line", detail)


def case_symbolize_offline():
    """heapguard-symbolize alone, on a report written by hand from the
    program's symbol table: PIE and fixed-address executables, llvm-symbolizer
    and addr2line, and its argument errors. Needs no heapguard report."""
    d = work_dir("symbolize_offline")
    for flags in ((), ("-no-pie",)):
        exe = build_program(d, "prog" + "".join(flags), DOUBLE_FREE_C, flags)
        rc, out, err = run(["nm", exe], env=os.environ.copy())
        syms = {parts[2]: int(parts[0], 16) for parts in (l.split() for l in out.splitlines()) if len(parts) == 3}
        base = 0x400000 if flags else 0
        off = syms["release_block"] + 4 - base
        report = ("==7==ERROR: HeapGuard: double-free on address 0x10 at pc 0x1 thread T0\n"
                  "    #0 0x1 in <unknown> (%s+0x%x)\n"
                  "    #1 0x2 in free (/nonexistent/libx.so+0x10)\n" % (exe, off))
        for extra in ([], ["--symbolizer", "addr2line"]):
            rc, out, err = run([ARGS.symbolize] + extra, input_text=report)
            check(rc == 1, "status 1 when a module is missing", both(out, err))
            check(re.search(r"#0 0x1 in release_block %s\.c:\d+$" % re.escape(exe), out, re.M),
                  "%s %s: frame resolved" % (flags, extra), both(out, err))
            check("#1 0x2 in free (/nonexistent/libx.so+0x10)" in out and "/nonexistent/libx.so: module not found" in err,
                  "missing module left as it is and named", both(out, err))
    rc, out, err = run([ARGS.symbolize, "--json"], input_text="not json\n")
    check(rc == 2 and "line 1 is not a JSON object" in err, "--json with text input", both(out, err))
    rc, out, err = run([ARGS.symbolize, "--bogus"])
    check(rc == 2 and "unknown option '--bogus'" in err, "unknown option", both(out, err))
    rc, out, err = run([ARGS.symbolize, "--symbolizer", os.path.join(d, "nope")], input_text="")
    check(rc == 2 and "not an executable" in err, "missing --symbolizer", both(out, err))
    rc, out, err = run([ARGS.symbolize, os.path.join(d, "no-such-report")])
    check(rc == 2 and "no-such-report" in err, "missing input file", both(out, err))


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--run", required=True)
    p.add_argument("--symbolize", required=True)
    p.add_argument("--lib", required=True)
    p.add_argument("--cc", default="cc")
    p.add_argument("--cmake", default="cmake")
    p.add_argument("--ctest", default="ctest")
    p.add_argument("--work", required=True)
    ARGS = p.parse_args()
    ARGS.work = os.path.join(os.path.abspath(ARGS.work), ARGS.case)
    os.makedirs(os.path.join(ARGS.work, "tmp"), exist_ok=True)
    try:
        CASES[ARGS.case]()
    except Failure as e:
        print("FAIL %s: %s" % (ARGS.case, e))
        return 1
    print("PASS %s" % ARGS.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
