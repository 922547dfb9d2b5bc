# SPDX-License-Identifier: Apache-2.0
#
# Allocation-heavy Python workload for tools/bench: builds and discards dicts,
# lists, strings, tuples, class instances and JSON documents, the object mix of
# a typical data-munging script. The runner starts it with PYTHONMALLOC=malloc
# so every object goes to the allocator under test instead of pymalloc.
# Deterministic (PYTHONHASHSEED is fixed by the runner); prints a checksum.
import json
import sys


class Record:
    def __init__(self, key, tags, payload):
        self.key = key
        self.tags = tags
        self.payload = payload


def build_records(n, seed):
    records = []
    x = seed
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        tags = [f"t{(x >> s) & 63}" for s in range(0, 40, 8)]
        payload = {"id": i, "name": f"user-{x % 100000}", "score": (x >> 20) % 1000,
                   "blob": "x" * ((x >> 30) % 300)}
        records.append(Record(f"k{x % 50000}", tags, payload))
    return records


def index_records(records):
    by_tag = {}
    for r in records:
        for t in r.tags:
            by_tag.setdefault(t, []).append(r.key)
    return {t: sorted(set(keys)) for t, keys in by_tag.items()}


def text_churn(records):
    parts = []
    for r in records:
        parts.append(",".join([r.key, r.payload["name"], str(r.payload["score"])] + r.tags))
    text = "\n".join(parts)
    words = text.replace(",", " ").split()
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return len(text), len(counts)


def json_round_trip(records):
    doc = json.dumps([r.payload for r in records[:4000]])
    back = json.loads(doc)
    return sum(len(d["blob"]) for d in back)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(6 * scale))
    checksum = 0
    keep = []
    for round_no in range(rounds):
        records = build_records(20000, round_no + 1)
        index = index_records(records)
        length, distinct = text_churn(records)
        blob_total = json_round_trip(records)
        tuples = sorted((r.payload["score"], r.key) for r in records)
        checksum = (checksum * 31 + length + distinct + blob_total + len(index) + tuples[0][0]) % (1 << 61)
        # A slice survives each round, so the heap holds long-lived objects
        # among the short-lived ones, as a real program's does.
        keep.extend(records[:: 50])
    print(f"python rounds={rounds} kept={len(keep)} checksum={checksum:x}")


if __name__ == "__main__":
    main()
