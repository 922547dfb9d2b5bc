// SPDX-License-Identifier: Apache-2.0
//
// alloc_ops fuzz target: runs the input as a stream of allocation operations
// over a fixed table of slots, checking each result against a shadow model
// (size, alignment, fill pattern, origin). Catches an allocator that loses or
// corrupts data, misaligns, overlaps blocks or hands out dirty calloc memory,
// with no sanitizer needed. A failed check prints one line and traps.

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>

// Declared weak so that the same source runs against glibc (where these are
// absent and the calls are skipped) and against heapguard.
extern "C" {
void free_sized(void* ptr, size_t size) __attribute__((weak));
void free_aligned_sized(void* ptr, size_t alignment, size_t size) __attribute__((weak));
const char* heapguard_version(void) __attribute__((weak));
const char* heapguard_mode(void) __attribute__((weak));
int heapguard_owns(const void* p) __attribute__((weak));
}

namespace heapguard::test {
namespace {

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAPGUARD_FUZZ_UNDER_ASAN 1
#endif
#endif
#ifdef HEAPGUARD_FUZZ_UNDER_ASAN
// ASan's aligned_alloc insists on the pre-C17 rule (size a multiple of the
// alignment) and fails otherwise; glibc and heapguard do not. Rounding only
// under ASan keeps the glibc validation run free of false positives.
constexpr bool kAlignedAllocNeedsMultiple = true;
#else
constexpr bool kAlignedAllocNeedsMultiple = false;
#endif

constexpr size_t kSlots = 64;
// Caps keep one input's footprint far below -rss_limit_mb even with
// quarantine and per-block guard overhead on top.
constexpr size_t kMaxBlock = size_t{8} << 20;
constexpr size_t kLiveCap = size_t{192} << 20;
constexpr size_t kMaxOpsPerInput = 4096;
constexpr size_t kMinAlign = 16;  // glibc x86-64 and heapguard both promise 16
constexpr size_t kPage = 4096;
// Window verified at each end of every live block by the check-all op; the
// whole block is verified when it is freed or reallocated.
constexpr size_t kCheckWindow = 4096;

// The content of a block is a position-dependent pattern: byte i of a block
// with seed s is kPattern[(s + i) % kPatternPeriod]. A prime period means a
// copy from a wrong offset (a realloc that slides data) does not match.
constexpr size_t kPatternPeriod = 251;
constexpr size_t kPatternChunk = 4096;
constexpr auto kPattern = [] {
  std::array<uint8_t, kPatternPeriod + kPatternChunk> a{};
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>((i % kPatternPeriod) * 167 + 0x5a);
  return a;
}();

enum class Origin : uint8_t {
  kMalloc,        // malloc, calloc, realloc, reallocarray: free or free_sized
  kAlignedAlloc,  // aligned_alloc: free or free_aligned_sized
  kMemalign,      // posix_memalign, memalign, valloc, pvalloc: free only
  kNew,
  kNewArray,
  kNewAligned,
  kNewArrayAligned,
};

struct Slot {
  uint8_t* ptr = nullptr;
  size_t size = 0;   // bytes the program may use (requested, or pvalloc's rounded size)
  size_t align = 0;  // alignment asked for (0: the default)
  uint8_t seed = 0;
  Origin origin = Origin::kMalloc;
  bool live = false;
};

enum Op : uint8_t {
  kOpMalloc,
  kOpCalloc,
  kOpRealloc,
  kOpReallocShrink,
  kOpReallocGrow,
  kOpReallocZero,
  kOpReallocArray,
  kOpFree,
  kOpAlignedAlloc,
  kOpPosixMemalign,
  kOpMemalign,
  kOpVallocPvalloc,
  kOpNew,
  kOpNewAligned,
  kOpUsableSize,
  kOpRewrite,
  kOpCheckAll,
  kOpCount,
};

const char* const kOpNames[kOpCount] = {
    "malloc",       "calloc",         "realloc",     "realloc-shrink", "realloc-grow",     "realloc-zero",
    "reallocarray", "free",           "aligned_alloc", "posix_memalign", "memalign",       "valloc/pvalloc",
    "new",          "new-aligned",    "malloc_usable_size", "rewrite",  "check-all",
};

// Reads the input front to back; past the end every read yields zero, so a
// truncated last op still runs with deterministic operands.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u24() {
    uint32_t v = u8();
    v |= uint32_t{u8()} << 8;
    v |= uint32_t{u8()} << 16;
    return v;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

class Interpreter {
 public:
  ~Interpreter() { release_all(); }

  void run(ByteReader& in) {
    for (op_index_ = 0; !in.done() && op_index_ < kMaxOpsPerInput; ++op_index_) {
      uint8_t code = in.u8() % kOpCount;
      current_op_ = static_cast<Op>(code);
      step(in);
    }
    current_op_ = kOpFree;
    release_all();
  }

 private:
  [[noreturn]] __attribute__((format(printf, 2, 3))) void fail(const char* fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "alloc_ops_fuzzer: VIOLATION at op #%zu (%s): %s\n", op_index_, kOpNames[current_op_], msg);
    fflush(stderr);
    __builtin_trap();
  }

  uint8_t seed_for_op() const { return static_cast<uint8_t>((op_index_ * 37 + 11) % kPatternPeriod); }

  // Sizes cover every allocator regime: zero, tiny, size-class edges
  // (16k-1, 16k, 16k+1), powers of two, the 128 KiB small/large boundary,
  // page multiples and a few MiB.
  static size_t read_size(ByteReader& in) {
    uint8_t sel = in.u8();
    uint32_t d = in.u24();
    size_t delta = static_cast<size_t>(d >> 16) % 3;  // 0,1,2 -> -1,0,+1
    // Selectors 13-15 repeat the small regimes: MiB blocks cost the most
    // to fill and verify, and the allocator's logic is densest below 1 KiB.
    switch (sel % 16) {
      case 0: return 0;
      case 1: return d % 16 + 1;
      case 2: return d % 240 + 17;
      case 3: return 16 * (d % 64 + 1) + delta - 1;
      case 4: return 16 * ((d & 0xffff) % 8192 + 1) + delta - 1;
      case 5: return (size_t{1} << ((d & 0xff) % 20 + 4)) + delta - 1;
      case 6: return (size_t{128} << 10) + (d & 0xffff) % 33 - 16;
      case 7: return d % 3840 + 257;
      case 8: return d % 61440 + 4097;
      case 9: return d % (72 << 10) + (64 << 10) + 1;
      case 10: return d % (896 << 10) + (128 << 10);
      case 11: return kPage * ((d & 0xffff) % 512 + 1) + delta - 1;
      case 12: return size_t{1} << 20 | (size_t{d} % (7 << 20));
      case 13: return d % 16 + 1;
      case 14: return 16 * (d % 64 + 1) + delta - 1;
      default: return d % 1024 + 1;
    }
  }

  static size_t read_align(ByteReader& in) { return size_t{1} << (in.u8() % 21); }

  size_t fit_size(size_t want, size_t replacing) const {
    size_t base = live_bytes_ - replacing;
    if (want > kMaxBlock) want = kMaxBlock;
    if (base + want > kLiveCap) want %= 4097;
    if (base + want > kLiveCap) want = 0;
    return want;
  }

  static void fill(uint8_t* p, size_t from, size_t to, uint8_t seed) {
    for (size_t off = from; off < to;) {
      size_t start = (seed + off) % kPatternPeriod;
      size_t n = to - off < kPatternChunk ? to - off : kPatternChunk;
      memcpy(p + off, kPattern.data() + start, n);
      off += n;
    }
  }

  void verify_range(const Slot& s, size_t from, size_t to, const char* when) {
    for (size_t off = from; off < to;) {
      size_t start = (s.seed + off) % kPatternPeriod;
      size_t n = to - off < kPatternChunk ? to - off : kPatternChunk;
      if (memcmp(s.ptr + off, kPattern.data() + start, n) != 0) {
        for (size_t i = 0; i < n; ++i) {
          uint8_t want = kPattern[start + i];
          if (s.ptr[off + i] != want)
            fail("%s: block %p (size %zu) byte %zu is 0x%02x, expected 0x%02x", when, static_cast<void*>(s.ptr),
                 s.size, off + i, s.ptr[off + i], want);
        }
      }
      off += n;
    }
  }

  // Compared in chunks with memcmp: a byte loop here would be instrumented
  // by -fsanitize=fuzzer and dominate the run time on MiB-sized blocks.
  void check_zeroed(const uint8_t* p, size_t size) {
    static constexpr uint8_t kZeros[kPatternChunk] = {};
    for (size_t off = 0; off < size; off += kPatternChunk) {
      size_t n = size - off < kPatternChunk ? size - off : kPatternChunk;
      if (memcmp(p + off, kZeros, n) == 0) continue;
      for (size_t i = off; i < off + n; ++i)
        if (p[i] != 0)
          fail("calloc block %p of %zu bytes has byte %zu = 0x%02x", static_cast<const void*>(p), size, i, p[i]);
    }
  }

  void verify_all(const Slot& s, const char* when) { verify_range(s, 0, s.size, when); }

  // Checks a fresh block and makes it the content of slot `index`.
  void adopt(size_t index, void* raw, size_t size, size_t align, Origin origin, bool zeroed) {
    auto* p = static_cast<uint8_t*>(raw);
    if (p == nullptr) fail("allocation of %zu bytes (align %zu) returned NULL", size, align);
    size_t want_align = align > kMinAlign ? align : kMinAlign;
    if (reinterpret_cast<uintptr_t>(p) % want_align != 0)
      fail("block %p of %zu bytes is not aligned to %zu", raw, size, want_align);
    check_no_overlap(index, p, size);
    if (heapguard_owns != nullptr) {
      if (heapguard_owns(p) != 1) fail("heapguard_owns(%p) != 1 for a live block", raw);
      if (heapguard_owns(p + 1) != 0) fail("heapguard_owns(%p) != 0 for an interior pointer", static_cast<void*>(p + 1));
    }
    if (zeroed) check_zeroed(p, size);
    Slot& s = slots_[index];
    s = Slot{p, size, align, seed_for_op(), origin, true};
    fill(p, 0, size, s.seed);
    live_bytes_ += size;
  }

  void check_no_overlap(size_t index, const uint8_t* p, size_t size) {
    // A zero-byte block still owns its address: malloc(0) must be unique.
    uintptr_t lo = reinterpret_cast<uintptr_t>(p);
    uintptr_t hi = lo + (size ? size : 1);
    for (size_t i = 0; i < kSlots; ++i) {
      const Slot& o = slots_[i];
      if (i == index || !o.live) continue;
      uintptr_t olo = reinterpret_cast<uintptr_t>(o.ptr);
      uintptr_t ohi = olo + (o.size ? o.size : 1);
      if (lo < ohi && olo < hi)
        fail("new block [%p,+%zu) overlaps live block [%p,+%zu) in slot %zu", static_cast<const void*>(p), size,
             static_cast<void*>(o.ptr), o.size, i);
    }
  }

  // Frees slot `index` with one of the deallocation functions valid for its
  // origin, chosen by `variant`, after verifying the whole block.
  void release(size_t index, uint8_t variant) {
    Slot& s = slots_[index];
    if (!s.live) return;
    verify_all(s, "before free");
    void* p = s.ptr;
    auto al = static_cast<std::align_val_t>(s.align);
    switch (s.origin) {
      case Origin::kMalloc:
        if (variant % 2 && free_sized != nullptr)
          free_sized(p, s.size);
        else
          free(p);
        break;
      case Origin::kAlignedAlloc:
        if (variant % 2 && free_aligned_sized != nullptr)
          free_aligned_sized(p, s.align, s.size);
        else
          free(p);
        break;
      case Origin::kMemalign: free(p); break;
      case Origin::kNew:
        if (variant % 3 == 0) ::operator delete(p);
        else if (variant % 3 == 1) ::operator delete(p, s.size);
        else ::operator delete(p, std::nothrow);
        break;
      case Origin::kNewArray:
        if (variant % 3 == 0) ::operator delete[](p);
        else if (variant % 3 == 1) ::operator delete[](p, s.size);
        else ::operator delete[](p, std::nothrow);
        break;
      case Origin::kNewAligned:
        if (variant % 3 == 0) ::operator delete(p, al);
        else if (variant % 3 == 1) ::operator delete(p, s.size, al);
        else ::operator delete(p, al, std::nothrow);
        break;
      case Origin::kNewArrayAligned:
        if (variant % 3 == 0) ::operator delete[](p, al);
        else if (variant % 3 == 1) ::operator delete[](p, s.size, al);
        else ::operator delete[](p, al, std::nothrow);
        break;
    }
    live_bytes_ -= s.size;
    s = Slot{};
  }

  void release_all() {
    for (size_t i = 0; i < kSlots; ++i) release(i, static_cast<uint8_t>(i));
  }

  static bool reallocatable(const Slot& s) {
    return s.origin == Origin::kMalloc || s.origin == Origin::kAlignedAlloc || s.origin == Origin::kMemalign;
  }

  // Resizes slot `index` to nmemb * elem bytes through realloc (nmemb == 0)
  // or reallocarray. The block keeps min(old, new) bytes and its seed; the
  // grown tail is filled so later checks cover it too. Resizing a live block
  // to 0 follows glibc: the block is freed and NULL comes back.
  void resize(size_t index, size_t nmemb, size_t elem) {
    Slot& s = slots_[index];
    const bool array = nmemb != 0;
    const char* fn = array ? "reallocarray" : "realloc";
    if (s.live && !reallocatable(s)) release(index, 0);  // operator new memory must not reach realloc
    const size_t replacing = s.live ? s.size : 0;
    size_t new_size = fit_size(array ? nmemb * elem : elem, replacing);
    if (array) {
      elem = new_size / nmemb;
      new_size = nmemb * elem;
    } else {
      elem = new_size;
    }
    if (!s.live) {
      void* fresh = array ? reallocarray(nullptr, nmemb, elem) : realloc(nullptr, elem);
      adopt(index, fresh, new_size, 0, Origin::kMalloc, false);
      return;
    }
    verify_all(s, array ? "before reallocarray" : "before realloc");
    const Slot old = s;
    live_bytes_ -= old.size;
    s = Slot{};
    void* q = array ? reallocarray(old.ptr, nmemb, elem) : realloc(old.ptr, elem);
    if (new_size == 0) {
      if (q != nullptr)
        fail("%s(%p) to 0 bytes returned %p, expected NULL (glibc frees the block)", fn,
             static_cast<void*>(old.ptr), q);
      return;
    }
    if (q == nullptr) fail("%s(%p) to %zu bytes returned NULL", fn, static_cast<void*>(old.ptr), new_size);
    auto* p = static_cast<uint8_t*>(q);
    if (reinterpret_cast<uintptr_t>(p) % kMinAlign != 0) fail("%s result %p is not %zu-aligned", fn, q, kMinAlign);
    check_no_overlap(index, p, new_size);
    s = Slot{p, new_size, 0, old.seed, Origin::kMalloc, true};
    const size_t kept = old.size < new_size ? old.size : new_size;
    verify_range(s, 0, kept, array ? "after reallocarray" : "after realloc");
    fill(p, kept, new_size, s.seed);
    live_bytes_ += new_size;
    if (heapguard_owns != nullptr && heapguard_owns(p) != 1) fail("heapguard_owns(%p) != 1 after %s", q, fn);
  }

  void step(ByteReader& in) {
    size_t index = in.u8() % kSlots;
    Slot& s = slots_[index];
    switch (current_op_) {
      case kOpMalloc: {
        release(index, in.u8());
        size_t n = fit_size(read_size(in), 0);
        adopt(index, malloc(n), n, 0, Origin::kMalloc, false);
        break;
      }
      case kOpCalloc: {
        release(index, 0);
        size_t nmemb = in.u8() % 17;  // 0 members is valid and must still be unique
        size_t elem = read_size(in);
        if (nmemb > 1) elem = fit_size(elem, 0) / nmemb;
        else elem = fit_size(elem, 0);
        adopt(index, calloc(nmemb, elem), nmemb * elem, 0, Origin::kMalloc, true);
        break;
      }
      case kOpRealloc: resize(index, 0, read_size(in)); break;
      case kOpReallocShrink: {
        uint32_t d = in.u24();
        size_t cur = s.live ? s.size : 0;
        resize(index, 0, cur - (cur ? d % (cur + 1) : 0));
        break;
      }
      case kOpReallocGrow: {
        size_t cur = s.live ? s.size : 0;
        resize(index, 0, cur + read_size(in));
        break;
      }
      case kOpReallocZero: {
        // Always start from a live malloc-family block so the call is realloc(p, 0).
        if (!s.live || !reallocatable(s)) {
          release(index, 0);
          adopt(index, malloc(0), 0, 0, Origin::kMalloc, false);
        }
        resize(index, 0, 0);
        break;
      }
      case kOpReallocArray: {
        size_t nmemb = in.u8() % 9 + 1;
        resize(index, nmemb, read_size(in) / nmemb);
        break;
      }
      case kOpFree: release(index, in.u8()); break;
      case kOpAlignedAlloc: {
        release(index, 0);
        size_t align = read_align(in);
        size_t n = fit_size(read_size(in), 0);
        if (kAlignedAllocNeedsMultiple) n = (n + align - 1) / align * align;
        adopt(index, aligned_alloc(align, n), n, align, Origin::kAlignedAlloc, false);
        break;
      }
      case kOpPosixMemalign: {
        release(index, 0);
        size_t align = read_align(in);
        if (align < sizeof(void*)) align = sizeof(void*);
        size_t n = fit_size(read_size(in), 0);
        void* p = nullptr;
        int rc = posix_memalign(&p, align, n);
        if (rc != 0) fail("posix_memalign(align %zu, %zu) returned %d", align, n, rc);
        adopt(index, p, n, align, Origin::kMemalign, false);
        break;
      }
      case kOpMemalign: {
        release(index, 0);
        size_t align = read_align(in);
        size_t n = fit_size(read_size(in), 0);
        adopt(index, memalign(align, n), n, align, Origin::kMemalign, false);
        break;
      }
      case kOpVallocPvalloc: {
        release(index, 0);
        uint8_t variant = in.u8();
        size_t n = fit_size(read_size(in), 0);
        if (variant % 2 == 0) {
          adopt(index, valloc(n), n, kPage, Origin::kMemalign, false);
        } else {
          // pvalloc hands out the size rounded up to whole pages, all of it
          // the caller's. pvalloc(0) is left unused: glibc 2.36 gives one
          // byte there (its mask is -(pagesize - 1)), ASan a whole page.
          size_t usable = (n + kPage - 1) / kPage * kPage;
          adopt(index, pvalloc(n), usable, kPage, Origin::kMemalign, false);
        }
        break;
      }
      case kOpNew: {
        release(index, 0);
        uint8_t variant = in.u8();
        size_t n = fit_size(read_size(in), 0);
        bool array = variant & 1;
        bool nothrow = variant & 2;
        void* p;
        if (array) p = nothrow ? ::operator new[](n, std::nothrow) : ::operator new[](n);
        else p = nothrow ? ::operator new(n, std::nothrow) : ::operator new(n);
        adopt(index, p, n, 0, array ? Origin::kNewArray : Origin::kNew, false);
        break;
      }
      case kOpNewAligned: {
        release(index, 0);
        uint8_t variant = in.u8();
        size_t align = read_align(in);
        size_t n = fit_size(read_size(in), 0);
        auto al = static_cast<std::align_val_t>(align);
        bool array = variant & 1;
        bool nothrow = variant & 2;
        void* p;
        if (array) p = nothrow ? ::operator new[](n, al, std::nothrow) : ::operator new[](n, al);
        else p = nothrow ? ::operator new(n, al, std::nothrow) : ::operator new(n, al);
        adopt(index, p, n, align, array ? Origin::kNewArrayAligned : Origin::kNewAligned, false);
        break;
      }
      case kOpUsableSize: {
        if (malloc_usable_size(nullptr) != 0) fail("malloc_usable_size(NULL) != 0");
        // Only malloc-family blocks: the C++ operators' blocks belong to
        // operator delete, and asking libc about them is outside any contract.
        if (!s.live || s.origin == Origin::kNew || s.origin == Origin::kNewArray || s.origin == Origin::kNewAligned ||
            s.origin == Origin::kNewArrayAligned)
          break;
        size_t usable = malloc_usable_size(s.ptr);
        if (usable < s.size)
          fail("malloc_usable_size(%p) = %zu < requested %zu", static_cast<void*>(s.ptr), usable, s.size);
        break;
      }
      case kOpRewrite: {
        if (!s.live) break;
        verify_all(s, "before rewrite");
        s.seed = seed_for_op();
        fill(s.ptr, 0, s.size, s.seed);
        break;
      }
      case kOpCheckAll: {
        for (const Slot& o : slots_) {
          if (!o.live) continue;
          if (o.size <= 2 * kCheckWindow) {
            verify_all(o, "check-all");
          } else {
            verify_range(o, 0, kCheckWindow, "check-all head");
            verify_range(o, o.size - kCheckWindow, o.size, "check-all tail");
          }
        }
        break;
      }
      case kOpCount: break;
    }
  }

  Slot slots_[kSlots];
  size_t live_bytes_ = 0;
  size_t op_index_ = 0;
  Op current_op_ = kOpMalloc;
};

// Proves at start-up that the process really runs on heapguard in the mode
// the environment asks for; otherwise a link mistake would silently fuzz
// glibc instead.
void check_allocator_identity() {
  const char* env_mode = getenv("HEAPGUARD_MODE");
#ifdef HEAPGUARD_FUZZ_REQUIRE_HEAPGUARD
  if (heapguard_owns == nullptr || heapguard_mode == nullptr) {
    fprintf(stderr, "alloc_ops_fuzzer: heapguard is not linked into this binary\n");
    __builtin_trap();
  }
  void* probe = malloc(1);
  int owned = heapguard_owns(probe);
  free(probe);
  if (owned != 1) {
    fprintf(stderr, "alloc_ops_fuzzer: malloc is not heapguard's (heapguard_owns(malloc(1)) = %d)\n", owned);
    __builtin_trap();
  }
#endif
  if (heapguard_mode == nullptr) {
    fprintf(stderr, "alloc_ops_fuzzer: allocator is not heapguard (validation build)\n");
    return;
  }
  const char* mode = heapguard_mode();
  fprintf(stderr, "alloc_ops_fuzzer: heapguard %s mode=%s\n", heapguard_version ? heapguard_version() : "?", mode);
  if (env_mode != nullptr && strcmp(env_mode, mode) != 0) {
    fprintf(stderr, "alloc_ops_fuzzer: HEAPGUARD_MODE=%s but heapguard runs in mode %s\n", env_mode, mode);
    __builtin_trap();
  }
}

}  // namespace
}  // namespace heapguard::test

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  heapguard::test::check_allocator_identity();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  heapguard::test::ByteReader in(data, size);
  heapguard::test::Interpreter interp;
  interp.run(in);
  return 0;
}
