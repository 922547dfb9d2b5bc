# SPDX-License-Identifier: Apache-2.0
#
# Allocation-heavy workload for CPython under heapguard. Run with
# PYTHONMALLOC=malloc so that every object comes from malloc, not from
# pymalloc's arenas. The output is deterministic (fixed seeds, sorted views,
# digests), so a run under heapguard must print exactly what glibc's run does.

import collections
import hashlib
import heapq
import json
import random
import re
import sys
import threading


def digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def dicts(rng):
    table = {}
    for i in range(120_000):
        key = "k%06d-%s" % (i, "x" * (i % 13))
        table[key] = (i, str(i * 7), [i] * (i % 4))
    for i in range(0, 120_000, 2):
        del table["k%06d-%s" % (i, "x" * (i % 13))]
    squares = {n: n * n for n in range(50_000)}
    nested = {str(i): {"id": i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)]} for i in range(20_000)}
    merged = {**squares, **{k: len(v["tags"]) for k, v in nested.items()}}
    total = sum(v[0] for v in table.values())
    print("dicts: %d live keys, sum %d, merged %d, digest %s"
          % (len(table), total, len(merged), digest(repr(sorted(table)[:50]))))


def lists(rng):
    numbers = [rng.randrange(10**9) for _ in range(200_000)]
    numbers.sort()
    pairs = sorted(((n % 1000, n) for n in numbers), reverse=True)
    matrix = [[(r * c) % 97 for c in range(200)] for r in range(200)]
    transposed = [list(col) for col in zip(*matrix)]
    heap = []
    for n in numbers[:50_000]:
        heapq.heappush(heap, -n)
    top = [-heapq.heappop(heap) for _ in range(5)]
    window = collections.deque(maxlen=1000)
    for n in numbers:
        window.append(n)
    print("lists: median %d, first pair %s, trace %d, top %s, window sum %d"
          % (numbers[len(numbers) // 2], pairs[0], sum(transposed[i][i] for i in range(200)),
             top, sum(window)))


def strings(rng):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
             for _ in range(80_000)]
    text = " ".join(words)
    counts = collections.Counter(text.split())
    upper = text.upper().replace("A", "@").encode("utf-8")
    chunks = [text[i:i + 77] for i in range(0, len(text), 77)]
    wide = "".join(chr(0x400 + (i % 200)) + chr(0x1F600 + (i % 50)) for i in range(30_000))
    found = re.findall(r"\b([a-z])[a-z]*\1\b", text)
    built = []
    for i, w in enumerate(words[:40_000]):
        built.append(f"{i:05d}:{w:>12}|{len(w):#x}")
    print("strings: %d words, %d distinct, most common %s, %d chunks, %d utf8 bytes, %d matches, %s"
          % (len(words), len(counts), counts.most_common(3), len(chunks),
             len(wide.encode("utf-8")) + len(upper), len(found), digest("\n".join(built))))


def big_ints():
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    fact = 1
    for i in range(2, 3000):
        fact *= i
    fib_a, fib_b = 0, 1
    for _ in range(20_000):
        fib_a, fib_b = fib_b, fib_a + fib_b
    power = 7 ** 40_000
    text = str(fact * power)
    print("big ints: %d! has %d digits, fib(20000) mod 1e9+7 = %d, 7^40000 %% 65537 = %d, "
          "product digits %d, digest %s"
          % (2999, len(str(fact)), fib_a % 1_000_000_007, power % 65537, len(text), digest(text)))


def json_round_trip(rng):
    doc = {
        "records": [
            {"id": i, "name": "record-%d" % i, "score": round(rng.random() * 100, 6),
             "tags": ["t%d" % t for t in range(i % 9)], "nested": {"a": [i, i + 1, {"b": None}]}}
            for i in range(25_000)
        ],
        "unicode": "h\u00e9llo \u4e16\u754c \U0001F600",
    }
    encoded = json.dumps(doc, sort_keys=True, indent=1)
    decoded = json.loads(encoded)
    again = json.dumps(decoded, sort_keys=True, indent=1)
    print("json: %d bytes, round trip %s, digest %s"
          % (len(encoded), "identical" if again == encoded and decoded == doc else "DIFFERENT",
             digest(encoded)))


class Node:
    __slots__ = ("value", "children", "parent")

    def __init__(self, value, parent=None):
        self.value = value
        self.children = []
        self.parent = parent  # a reference cycle for the garbage collector


def object_graph():
    total = 0
    for round_ in range(5):
        root = Node(round_)
        frontier = [root]
        for depth in range(6):
            next_frontier = []
            for node in frontier:
                for k in range(5 if depth < 5 else 1):
                    child = Node(node.value * 5 + k, node)
                    node.children.append(child)
                    next_frontier.append(child)
            frontier = next_frontier
        total += sum(n.value for n in frontier)
        del root, frontier, next_frontier
    print("objects: cyclic trees built and dropped, leaf sum %d" % total)


def threads():
    results = [None] * 4

    def work(index):
        local = {}
        for i in range(40_000):
            local[(index, i)] = [str(i)] * (i % 3)
        results[index] = sum(len(v) for v in local.values())

    pool = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print("threads: %s" % results)


def main():
    rng = random.Random(20240601)
    dicts(rng)
    lists(rng)
    strings(rng)
    big_ints()
    json_round_trip(rng)
    object_graph()
    threads()
    print("done")


main()
