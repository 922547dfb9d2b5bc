#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# Writes the seed inputs of alloc_ops_fuzzer to fuzz/corpus/alloc_ops/. The
# byte layout mirrors ByteReader/Interpreter::step in alloc_ops_fuzzer.cpp, so
# each seed starts the fuzzer on one family of operations instead of on noise.
# Run it again after changing the op encoding; the output is deterministic.

import os
import sys

(MALLOC, CALLOC, REALLOC, REALLOC_SHRINK, REALLOC_GROW, REALLOC_ZERO,
 REALLOCARRAY, FREE, ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN, VALLOC_PVALLOC,
 NEW, NEW_ALIGNED, USABLE_SIZE, REWRITE, CHECK_ALL) = range(17)

# Size selectors of Interpreter::read_size.
ZERO, TINY, SMALL, CLASS_EDGE, CLASS_EDGE_WIDE, POW2, LARGE_EDGE, MID, MID2, \
    NEAR_128K, LARGE, PAGE_EDGE, MIB = range(13)


def size(sel, detail=0):
    return bytes([sel]) + detail.to_bytes(3, "little")


def op(code, slot, *operands):
    return bytes([code, slot]) + b"".join(operands)


def u8(v):
    return bytes([v])


def seed_malloc_free():
    out = b""
    sels = [ZERO, TINY, SMALL, CLASS_EDGE, CLASS_EDGE_WIDE, POW2, LARGE_EDGE,
            MID, MID2, NEAR_128K, LARGE, PAGE_EDGE, MIB]
    for i, sel in enumerate(sels):
        # detail bits 16..23 pick -1/0/+1 around an edge.
        out += op(MALLOC, i, u8(0), size(sel, 0x000105 + (i % 3) * 0x10000))
    for i in range(len(sels)):
        out += op(FREE, i, u8(i))
    return out


def seed_calloc():
    out = b""
    for i, (nmemb, sel, detail) in enumerate([(0, TINY, 3), (1, ZERO, 0), (5, SMALL, 40),
                                               (16, CLASS_EDGE, 7), (3, NEAR_128K, 16),
                                               (2, LARGE, 5000)]):
        out += op(CALLOC, i, u8(nmemb), size(sel, detail))
    # Free and calloc again so recycled (possibly poisoned) memory is checked.
    for i in range(6):
        out += op(FREE, i, u8(1))
    for i in range(6):
        out += op(CALLOC, i, u8(4), size(MID, 100 * i))
    return out


def seed_realloc():
    out = op(MALLOC, 0, u8(0), size(TINY, 7))
    out += op(REALLOC_GROW, 0, size(SMALL, 50))
    out += op(REALLOC_GROW, 0, size(NEAR_128K, 20))
    out += op(REALLOC_GROW, 0, size(MIB, 3))
    out += op(REALLOC_SHRINK, 0, (1 << 20).to_bytes(3, "little"))
    out += op(REALLOC, 0, size(CLASS_EDGE, 0x02000F))
    out += op(REALLOC_ZERO, 0)
    out += op(REALLOC, 1, size(SMALL, 9))  # realloc(NULL, n)
    out += op(REALLOCARRAY, 1, u8(3), size(MID, 77))
    out += op(REALLOCARRAY, 2, u8(2), size(TINY, 1))
    out += op(REALLOC_SHRINK, 1, (0).to_bytes(3, "little"))
    out += op(REALLOC_ZERO, 3)  # realloc(malloc(0), 0)
    return out


def seed_aligned():
    out = b""
    for i, shift in enumerate([0, 3, 4, 5, 6, 12, 13, 16, 20]):
        out += op(ALIGNED_ALLOC, i, u8(shift), size(SMALL, 33 + i))
        out += op(POSIX_MEMALIGN, 16 + i, u8(shift), size(CLASS_EDGE, i))
        out += op(MEMALIGN, 32 + i, u8(shift), size(MID2, 999 * i))
    out += op(VALLOC_PVALLOC, 48, u8(0), size(SMALL, 5))
    out += op(VALLOC_PVALLOC, 49, u8(1), size(SMALL, 5))
    out += op(VALLOC_PVALLOC, 50, u8(1), size(ZERO))
    out += op(REALLOC_GROW, 32, size(MID, 10))  # realloc of a memalign block
    out += op(CHECK_ALL, 0)
    for i in list(range(9)) + list(range(16, 25)) + list(range(32, 41)) + [48, 49, 50]:
        out += op(FREE, i, u8(i))
    return out


def seed_cxx():
    out = b""
    for variant in range(4):  # bit0 array, bit1 nothrow
        out += op(NEW, variant, u8(variant), size(SMALL, 11 * variant))
        out += op(NEW_ALIGNED, 8 + variant, u8(variant), u8(6 + variant), size(MID, 3 * variant))
    out += op(NEW, 4, u8(0), size(ZERO))
    out += op(NEW_ALIGNED, 12, u8(1), u8(12), size(LARGE, 1))
    for slot, free_variant in [(0, 0), (1, 1), (2, 2), (3, 0), (4, 1),
                               (8, 0), (9, 1), (10, 2), (11, 1), (12, 2)]:
        out += op(FREE, slot, u8(free_variant))
    return out


def seed_usable_rewrite():
    out = op(MALLOC, 5, u8(0), size(SMALL, 100))
    out += op(USABLE_SIZE, 5)
    out += op(REWRITE, 5)
    out += op(ALIGNED_ALLOC, 6, u8(7), size(CLASS_EDGE, 9))
    out += op(USABLE_SIZE, 6)
    out += op(MALLOC, 7, u8(0), size(MIB, 12345))
    out += op(REWRITE, 7)
    out += op(USABLE_SIZE, 7)
    out += op(CHECK_ALL, 0)
    out += op(USABLE_SIZE, 8)  # empty slot: only malloc_usable_size(NULL)
    return out


def seed_churn():
    # Many slots alive at once across regimes, freed in an interleaved order.
    out = b""
    for i in range(64):
        out += op(MALLOC, i, u8(0), size(i % 13, 0x010000 * (i % 3) + 17 * i))
    for i in range(0, 64, 2):
        out += op(FREE, i, u8(i))
    for i in range(0, 64, 2):
        out += op(CALLOC, i, u8(1), size(CLASS_EDGE, i))
    out += op(CHECK_ALL, 0)
    return out


SEEDS = {
    "malloc_free": seed_malloc_free,
    "calloc": seed_calloc,
    "realloc": seed_realloc,
    "aligned": seed_aligned,
    "cxx_new_delete": seed_cxx,
    "usable_rewrite": seed_usable_rewrite,
    "churn": seed_churn,
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "alloc_ops")
    os.makedirs(out_dir, exist_ok=True)
    for name, make in SEEDS.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(make())
    print(f"wrote {len(SEEDS)} seeds to {out_dir}")


if __name__ == "__main__":
    main()
