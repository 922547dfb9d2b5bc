#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Real programs under heapguard: each case runs a real program (python3, g++,
# sqlite3, git, redis-server) twice, once without and once with
# LD_PRELOAD=libheapguard.so, and requires identical stdout and clean exits.
# The preload goes only into the environments of the programs under test,
# never into this driver's own process; every guarded process must print
# heapguard's exit statistics (print_stats=1), which proves it really ran
# under heapguard.

import argparse
import difflib
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

PROGRAMS = {
    # Debian's interpreter, not whatever `python3` a PATH shim resolves to.
    "python3": ("/usr/bin/python3", "python3"),
    "g++": ("/usr/bin/g++", "g++"),
    "sqlite3": ("/usr/bin/sqlite3", "sqlite3"),
    "git": ("/usr/bin/git", "git"),
    "redis-server": ("/usr/bin/redis-server", "redis-server"),
    "redis-cli": ("/usr/bin/redis-cli", "redis-tools"),
    "redis-benchmark": ("/usr/bin/redis-benchmark", "redis-tools"),
}

# Variables that would change what the programs do, or would preload
# something into the baseline run.
STRIPPED_ENV_PREFIXES = ("LD_PRELOAD", "HEAPGUARD_", "PYTHON", "GIT_", "REDISCLI_")


class CaseFailure(Exception):
    pass


def program(name):
    path, package = PROGRAMS[name]
    if not os.access(path, os.X_OK):
        raise CaseFailure("%s not found; install the Debian package '%s'" % (path, package))
    return path


def tail(data, limit=3000):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= limit else "...\n" + text[-limit:]


class Runner:
    """Runs the commands of one pass (baseline or guarded) and keeps every
    process's stderr so the pass can be checked as a whole afterwards."""

    def __init__(self, env, guarded):
        self.env = env
        self.guarded = guarded
        self.stderrs = []  # (label, stderr text)

    def run(self, label, cmd, cwd, stdin=None, extra_env=None, timeout=120, binary=False):
        env = dict(self.env)
        if extra_env:
            env.update(extra_env)
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CaseFailure("%s: timed out after %ds: %s" % (label, timeout, " ".join(cmd)))
        self.stderrs.append((label, proc.stderr.decode("utf-8", "replace")))
        if proc.returncode != 0:
            raise CaseFailure("%s: exit status %d: %s\n--- stderr ---\n%s"
                              % (label, proc.returncode, " ".join(cmd), tail(proc.stderr)))
        return proc.stdout if binary else proc.stdout.decode("utf-8", "replace")

    def record(self, label, stderr_text):
        self.stderrs.append((label, stderr_text))


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- python3

def case_python(runner, work, args):
    script = os.path.join(args.programs_dir, "alloc_heavy.py")
    # PYTHONMALLOC=malloc sends every object through malloc rather than
    # pymalloc's arenas; the hash seed pins anything that iterates sets.
    env = {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    return runner.run("python3", [program("python3"), "-S", "-B", script], cwd=work, extra_env=env)


# ---------------------------------------------------------------- g++

def case_gxx(runner, work, args):
    source = os.path.join(work, "templates.cpp")
    shutil.copyfile(os.path.join(args.programs_dir, "templates.cpp"), source)
    gxx = program("g++")
    # Compile to assembly first: GCC's output does not depend on heap
    # addresses, so a heap corruption inside cc1plus that changes the code
    # shows up as a different digest. The second step runs as and ld.
    runner.run("g++ -S", [gxx, "-std=c++20", "-O1", "-S", "templates.cpp", "-o", "templates.s"], cwd=work)
    with open(os.path.join(work, "templates.s"), "rb") as f:
        assembly = f.read()
    runner.run("g++ link", [gxx, "templates.s", "-o", "templates"], cwd=work)
    output = runner.run("templates", [os.path.join(work, "templates")], cwd=work)
    return "assembly: %d lines, sha256 %s\n%s" % (assembly.count(b"\n"), sha256_hex(assembly), output)


# ---------------------------------------------------------------- sqlite3

def sqlite_script():
    rng = random.Random(1234)
    cities = ["Lisbon", "Oslo", "Quito", "Perth", "Lagos", "Hanoi", "Lima", "Turin", "Dakar", "Kyoto"]
    products = ["widget", "gadget", "sprocket", "flange", "gizmo", "doohickey", "whatsit"]
    out = [
        "PRAGMA foreign_keys=ON;",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, joined INTEGER);",
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),"
        " product TEXT, qty INTEGER, price REAL, note TEXT);",
        "CREATE TABLE tags(order_id INTEGER, tag TEXT);",
        "BEGIN;",
    ]
    for i in range(1, 3001):
        out.append("INSERT INTO customers VALUES(%d, 'customer %05d %s', '%s', %d);"
                   % (i, i, "x" * (i % 17), rng.choice(cities), 1000 + rng.randrange(5000)))
    for i in range(1, 30001):
        note = "'%s'" % ("n" * rng.randrange(0, 300)) if i % 5 else "NULL"
        out.append("INSERT INTO orders VALUES(%d, %d, '%s', %d, %.2f, %s);"
                   % (i, rng.randrange(1, 3001), rng.choice(products), rng.randrange(1, 50),
                      rng.randrange(100, 100000) / 100.0, note))
    for i in range(1, 12001):
        out.append("INSERT INTO tags VALUES(%d, 'tag%d');" % (rng.randrange(1, 30001), i % 37))
    out += [
        "COMMIT;",
        "CREATE INDEX orders_customer ON orders(customer_id);",
        "CREATE INDEX orders_product ON orders(product, qty);",
        "CREATE INDEX tags_order ON tags(order_id);",
        ".print -- totals by city",
        "SELECT c.city, count(*), sum(o.qty), printf('%.2f', sum(o.qty * o.price)) FROM orders o"
        " JOIN customers c ON c.id = o.customer_id GROUP BY c.city ORDER BY c.city;",
        ".print -- top customers",
        "SELECT c.name, count(o.id) AS n, printf('%.2f', sum(o.qty * o.price)) AS total FROM customers c"
        " JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY sum(o.qty * o.price) DESC, c.id LIMIT 15;",
        ".print -- products with rank per city",
        "SELECT city, product, total, rnk FROM (SELECT c.city, o.product, sum(o.qty) AS total,"
        " rank() OVER (PARTITION BY c.city ORDER BY sum(o.qty) DESC, o.product) AS rnk FROM orders o"
        " JOIN customers c ON c.id = o.customer_id GROUP BY c.city, o.product) WHERE rnk <= 2"
        " ORDER BY city, rnk;",
        ".print -- tags",
        "SELECT t.tag, count(DISTINCT t.order_id), max(o.qty) FROM tags t JOIN orders o ON o.id = t.order_id"
        " GROUP BY t.tag HAVING count(*) > 300 ORDER BY t.tag;",
        ".print -- recursive cte and strings",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
        " SELECT count(*), sum(i), length(group_concat(i, ',')), max(length(printf('%0*d', i % 200, i)))"
        " FROM n;",
        "SELECT length(group_concat(note, '|')), count(note), sum(length(replace(note, 'n', 'mm')))"
        " FROM orders;",
        ".print -- updates and deletes",
        "UPDATE orders SET price = price * 1.1, note = upper(coalesce(note, 'none')) WHERE qty > 40;",
        "DELETE FROM tags WHERE tag IN ('tag1', 'tag2', 'tag3');",
        "DELETE FROM orders WHERE id % 7 = 0 AND id NOT IN (SELECT order_id FROM tags);",
        "SELECT count(*), printf('%.2f', sum(price)), count(DISTINCT note) FROM orders;",
        "SELECT product, count(*) FROM orders WHERE qty BETWEEN 10 AND 20 GROUP BY product ORDER BY 2 DESC, 1;",
        "VACUUM;",
        "PRAGMA integrity_check;",
        "SELECT count(*) FROM customers WHERE id NOT IN (SELECT customer_id FROM orders);",
    ]
    return "\n".join(out) + "\n"


def case_sqlite(runner, work, args):
    script = sqlite_script().encode("utf-8")
    return runner.run("sqlite3", [program("sqlite3"), "-bail", "-batch", os.path.join(work, "test.db")],
                      cwd=work, stdin=script)


# ---------------------------------------------------------------- git

GIT_EPOCH = 1700000000


def write_generated_files(repo, rng, commit, names):
    for name in names:
        path = os.path.join(repo, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lines = ["%s line %d of commit %d: %s" % (name, i, commit, "".join(rng.choice("abcdefgh") for _ in range(30)))
                 for i in range(rng.randrange(20, 200))]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")


def case_git(runner, work, args):
    git = program("git")
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    base_env = {
        "HOME": work,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Heap Guard",
        "GIT_AUTHOR_EMAIL": "heapguard@example.invalid",
        "GIT_COMMITTER_NAME": "Heap Guard",
        "GIT_COMMITTER_EMAIL": "heapguard@example.invalid",
    }
    clock = [GIT_EPOCH]
    transcript = []

    def g(*argv, record=True, binary=False):
        env = dict(base_env)
        date = "@%d +0000" % clock[0]
        env["GIT_AUTHOR_DATE"] = date
        env["GIT_COMMITTER_DATE"] = date
        out = runner.run("git " + argv[0], [git] + list(argv), cwd=repo, extra_env=env, binary=binary)
        if record:
            transcript.append("$ git %s\n%s" % (" ".join(argv), out if not binary else sha256_hex(out) + "\n"))
        return out

    def commit(message):
        clock[0] += 3600
        g("add", "-A", record=False)
        g("commit", "-q", "-m", message, record=False)

    rng = random.Random(99)
    g("init", "-q", "-b", "main", ".")
    g("config", "gc.auto", "0")
    g("config", "maintenance.auto", "false")
    g("config", "core.autocrlf", "false")
    shared = ["src/module%02d/file%02d.txt" % (m, f) for m in range(8) for f in range(10)]
    main_only = ["main/part%02d.txt" % i for i in range(30)]
    feature_only = ["feature/part%02d.txt" % i for i in range(30)]

    for c in range(25):
        write_generated_files(repo, rng, c, rng.sample(shared, 12) + rng.sample(main_only, 3))
        commit("main commit %d" % c)
    g("branch", "feature")
    g("tag", "-a", "v1", "-m", "first release")
    for c in range(25, 40):
        write_generated_files(repo, rng, c, rng.sample(main_only, 6))
        if c % 5 == 0:
            victim = main_only[c % len(main_only)]
            if os.path.exists(os.path.join(repo, victim)):
                os.remove(os.path.join(repo, victim))
        commit("main commit %d" % c)
    g("checkout", "-q", "feature")
    for c in range(40, 55):
        write_generated_files(repo, rng, c, rng.sample(feature_only, 6))
        commit("feature commit %d" % c)
    g("mv", "feature/part00.txt", "feature/renamed00.txt")
    commit("feature rename")
    g("checkout", "-q", "main")
    clock[0] += 3600
    g("merge", "--no-ff", "-q", "-m", "merge feature", "feature")

    g("log", "--stat", "--format=%H %an %ad %s", "--date=iso-strict")
    g("log", "--graph", "--oneline", "--decorate", "--all")
    g("diff", "--stat", "v1", "HEAD")
    g("diff", "HEAD~3", "HEAD", "--", "main", binary=True)
    g("shortlog", "-sn", "HEAD")
    g("rev-list", "--count", "--all")
    g("ls-tree", "-r", "HEAD")
    g("blame", "--porcelain", "src/module03/file04.txt", binary=True)
    g("grep", "-c", "line 1[0-9] of commit 3", "HEAD")
    g("gc", "-q")
    g("fsck", "--full", "--strict", "--no-progress")
    counts = g("count-objects", "-v", record=False)
    transcript.append("$ git count-objects -v (object counts)\n%s\n"
                      % "\n".join(l for l in counts.splitlines() if l.split(":")[0] in ("count", "in-pack", "packs")))
    g("archive", "--format=tar", "HEAD", binary=True)
    g("cat-file", "-p", "HEAD")
    return "".join(transcript)


# ---------------------------------------------------------------- redis

def free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_commands():
    rng = random.Random(4242)
    cmds = ["FLUSHALL"]
    for i in range(1500):
        cmds.append("SET key:%d %s" % (i, "v%d-%s" % (i, "x" * rng.randrange(0, 200))))
    for i in range(0, 1500, 7):
        cmds.append("GET key:%d" % i)
        cmds.append("APPEND key:%d -tail%d" % (i, i))
        cmds.append("STRLEN key:%d" % i)
    for i in range(600):
        cmds.append("RPUSH list:%d %s" % (i % 20, " ".join("e%d" % (i * 3 + k) for k in range(5))))
        cmds.append("HSET hash:%d f%d %d g%d %s" % (i % 30, i, i * i, i, "y" * (i % 50)))
        cmds.append("ZADD zset:%d %d m%d %d n%d" % (i % 10, rng.randrange(1000), i, rng.randrange(1000), i))
        cmds.append("SADD set:%d a%d b%d" % (i % 15, i % 97, i % 31))
        cmds.append("INCRBY counter:%d %d" % (i % 25, i))
    for i in range(20):
        cmds.append("LRANGE list:%d 0 -1" % i)
        cmds.append("LLEN list:%d" % i)
    for i in range(30):
        cmds.append("HLEN hash:%d" % i)
        cmds.append("HGET hash:%d f%d" % (i, i + 30))
    for i in range(10):
        cmds.append("ZRANGE zset:%d 0 20 WITHSCORES" % i)
        cmds.append("ZCARD zset:%d" % i)
    for i in range(15):
        cmds.append("SORT set:%d ALPHA" % i)
    cmds.append("SETRANGE big 2000000 end")
    cmds.append("STRLEN big")
    cmds.append("SETRANGE big 0 start")
    cmds.append("GETRANGE big 0 9")
    cmds.append("EVAL \"local t = {} for i = 1, 20000 do t[i] = tostring(i) .. ARGV[1] end"
                " return #table.concat(t, ',')\" 0 lua")
    cmds.append("EVAL \"return redis.call('LRANGE', KEYS[1], 0, 3)\" 1 list:3")
    cmds.append("MGET key:1 key:2 missing key:3")
    cmds.append("DEL key:1 key:2 key:3 list:0 hash:0")
    cmds.append("UNLINK big")
    cmds.append("DBSIZE")
    cmds.append("NOSUCHCOMMAND")
    return "\n".join(cmds) + "\n"


def case_redis(runner, work, args):
    server = program("redis-server")
    cli = program("redis-cli")
    bench = program("redis-benchmark")
    out_path = os.path.join(work, "server.out")
    err_path = os.path.join(work, "server.err")
    proc = None
    port = None
    # The port is chosen by binding port 0; another process may grab it before
    # redis-server binds, in which case the server exits and we try again.
    for attempt in range(5):
        port = free_loopback_port()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--dir", work, "--logfile", "", "--protected-mode", "yes"],
                cwd=work, env=runner.env, stdout=out, stderr=err)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None and not redis_ping(port):
            time.sleep(0.05)
        if proc.poll() is None and redis_ping(port):
            break
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        raise CaseFailure("redis-server did not start on a free loopback port:\n%s"
                          % tail(open(out_path, "rb").read() + open(err_path, "rb").read()))
    try:
        base = [cli, "-h", "127.0.0.1", "-p", str(port)]
        transcript = ["-- redis-cli script\n"]
        transcript.append(runner.run("redis-cli script", base, cwd=work,
                                     stdin=redis_commands().encode("utf-8")))
        summary = runner.run("redis-benchmark",
                             [bench, "-h", "127.0.0.1", "-p", str(port), "-n", "20000", "-q",
                              "-t", "set,get,lpush,lpop,incr"], cwd=work, timeout=90)
        # Throughput differs between runs; only the set of tests that
        # completed goes into the compared transcript.
        finished = sorted(set(re.findall(r"\b([A-Z]+): [0-9.]+ requests per second", summary)))
        transcript.append("-- redis-benchmark finished: %s\n" % " ".join(finished))
        if finished != ["GET", "INCR", "LPOP", "LPUSH", "SET"]:
            raise CaseFailure("redis-benchmark did not finish every test:\n%s" % tail(summary))
        transcript.append("-- after benchmark\n")
        transcript.append(runner.run("redis-cli after", base, cwd=work, stdin=(
            "GET counter:__rand_int__\nLLEN mylist\nGET key:__rand_int__\nDBSIZE\n").encode("utf-8")))
        runner.run("redis-cli shutdown", base + ["SHUTDOWN", "NOSAVE"], cwd=work)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise CaseFailure("redis-server did not exit within 30 s of SHUTDOWN NOSAVE")
        server_err = open(err_path, "rb").read().decode("utf-8", "replace")
        runner.record("redis-server", server_err)
        if rc != 0:
            raise CaseFailure("redis-server exited with status %d\n--- stdout ---\n%s--- stderr ---\n%s"
                              % (rc, tail(open(out_path, "rb").read()), tail(server_err)))
        return "".join(transcript)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


CASES = {
    "python": case_python,
    "gxx": case_gxx,
    "sqlite": case_sqlite,
    "git": case_git,
    "redis": case_redis,
}


def make_env(args, guarded):
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_ENV_PREFIXES)}
    env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC"})
    if guarded:
        env["LD_PRELOAD"] = args.preload
        env["HEAPGUARD_MODE"] = args.mode
        env["HEAPGUARD_OPTIONS"] = "print_stats=1"
        for item in args.guard_env:
            key, _, value = item.partition("=")
            env[key] = value
    return env


def check_stderrs(runner, stats_re):
    problems = []
    for label, text in runner.stderrs:
        if runner.guarded:
            if "ERROR: HeapGuard" in text:
                problems.append("%s reported a heap error:\n%s" % (label, tail(text)))
            elif not stats_re.search(text):
                problems.append("%s (under LD_PRELOAD) printed no heapguard statistics line matching %r;"
                                " stderr:\n%s" % (label, stats_re.pattern, tail(text)))
        elif "HeapGuard" in text:
            problems.append("%s (baseline, no preload) mentions HeapGuard:\n%s" % (label, tail(text)))
    return problems


def main():
    parser = argparse.ArgumentParser(
        description="Run a real program with and without heapguard and compare its stdout.")
    parser.add_argument("--case", required=True, choices=sorted(CASES))
    parser.add_argument("--preload", required=True, help="LD_PRELOAD value for the guarded run (libraries separated by colons)")
    parser.add_argument("--mode", required=True, help="HEAPGUARD_MODE for the guarded run")
    parser.add_argument("--programs-dir", required=True, help="directory with alloc_heavy.py, templates.cpp")
    parser.add_argument("--work-root", required=True, help="scratch directory; kept on failure")
    parser.add_argument("--stats-regex", default=r"^==.*HeapGuard",
                        help="a line every guarded process must print to stderr at exit")
    parser.add_argument("--guard-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra variable for the guarded run only")
    args = parser.parse_args()
    for library in args.preload.split(":"):
        if not os.path.isfile(library):
            print("FAIL: preload library %s does not exist" % library)
            return 1
    stats_re = re.compile(args.stats_regex, re.MULTILINE)

    root = os.path.join(args.work_root, "%s.%s" % (args.case, args.mode))
    shutil.rmtree(root, ignore_errors=True)
    results = {}
    problems = []
    for guarded in (False, True):
        name = "heapguard" if guarded else "baseline"
        work = os.path.join(root, name)
        os.makedirs(work)
        runner = Runner(make_env(args, guarded), guarded)
        start = time.monotonic()
        try:
            transcript = CASES[args.case](runner, work, args)
        except CaseFailure as failure:
            print("FAIL: %s run of %s: %s" % (name, args.case, failure))
            print("work directory kept: %s" % root)
            return 1
        elapsed = time.monotonic() - start
        problems += check_stderrs(runner, stats_re)
        results[name] = (transcript, elapsed, len(runner.stderrs))

    base_out, base_time, _ = results["baseline"]
    guard_out, guard_time, processes = results["heapguard"]
    if base_out != guard_out:
        diff = difflib.unified_diff(base_out.splitlines(True), guard_out.splitlines(True),
                                    "baseline stdout", "heapguard stdout", n=2)
        problems.append("stdout differs:\n" + tail("".join(diff), 6000))
    if problems:
        for p in problems:
            print("FAIL: %s" % p)
        print("work directory kept: %s" % root)
        return 1
    shutil.rmtree(root, ignore_errors=True)
    print("%s [%s]: stdout identical (%d bytes, sha256 %s); %d guarded commands printed heapguard stats;"
          " baseline %.1fs, heapguard %.1fs"
          % (args.case, args.mode, len(guard_out), sha256_hex(guard_out)[:12], processes, base_time, guard_time))
    return 0


if __name__ == "__main__":
    sys.exit(main())
