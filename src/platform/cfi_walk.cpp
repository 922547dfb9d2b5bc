// SPDX-License-Identifier: Apache-2.0
// .eh_frame decoding for the return-address walk (see cfi_walk.h). Formats:
// the System V x86-64 ABI (section 4.2.4, .eh_frame_hdr and pointer
// encodings) and DWARF 4 section 6.4 (call frame instructions). Decoding
// runs inside dl_iterate_phdr's callback (the module cannot be unloaded
// meanwhile), behind the fork gate, and every read stays inside the FDE's
// or CIE's own length and the loaded segment holding .eh_frame, so a
// malformed section yields an Unknown rule, never a stray read.
#include "platform/cfi_walk.h"

#include <link.h>

#include <atomic>
#include <cstring>

#include "core/core.h"
#include "platform/unwind.h"

namespace heapguard::pal {
namespace {

// DWARF register numbers on x86-64.
constexpr unsigned kRegRbp = 6;
constexpr unsigned kRegRsp = 7;
constexpr unsigned kRegRa = 16;

// ---- Byte reader over one bounded record -----------------------------------

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  bool has(size_t n) const { return ok && size_t(end - p) >= n; }
  template <typename T>
  T fixed() {
    if (!has(sizeof(T))) {
      ok = false;
      return T{};
    }
    T v;
    memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  }
  uint64_t uleb() {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (!has(1)) break;
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  int64_t sleb() {
    int64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (!has(1)) break;
      const uint8_t b = *p++;
      v |= int64_t(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (shift + 7 < 64 && (b & 0x40) != 0) v |= -(int64_t(1) << (shift + 7));
        return v;
      }
    }
    ok = false;
    return 0;
  }
  // A DW_EH_PE-encoded pointer. pcrel is relative to the field's own
  // address, datarel to `data_base` (the .eh_frame_hdr). `value_only`
  // ignores the application bits (an FDE's pc_range).
  uintptr_t encoded(uint8_t enc, uintptr_t data_base = 0, bool value_only = false) {
    if (enc == 0xff) return 0;  // DW_EH_PE_omit
    const auto field = reinterpret_cast<uintptr_t>(p);
    uint64_t v;
    switch (enc & 0x0f) {
      case 0x00: v = fixed<uint64_t>(); break;                  // absptr
      case 0x01: v = uleb(); break;                             // uleb128
      case 0x02: v = fixed<uint16_t>(); break;                  // udata2
      case 0x03: v = fixed<uint32_t>(); break;                  // udata4
      case 0x04: v = fixed<uint64_t>(); break;                  // udata8
      case 0x09: v = uint64_t(sleb()); break;                   // sleb128
      case 0x0a: v = uint64_t(int64_t(fixed<int16_t>())); break;  // sdata2
      case 0x0b: v = uint64_t(int64_t(fixed<int32_t>())); break;  // sdata4
      case 0x0c: v = fixed<uint64_t>(); break;                  // sdata8
      default: ok = false; return 0;
    }
    if (value_only) return uintptr_t(v);
    switch (enc & 0x70) {
      case 0x00: break;
      case 0x10: v += field; break;      // pcrel
      case 0x30: v += data_base; break;  // datarel
      default: ok = false; return 0;     // textrel, funcrel, aligned: not in x86-64 .eh_frame
    }
    // DW_EH_PE_indirect (0x80) only appears for personality pointers, which
    // are skipped, never followed.
    return uintptr_t(v);
  }
};

// ---- Finding the FDE -------------------------------------------------------

// The loaded segment that holds a module's .eh_frame_hdr and .eh_frame
// (the linker puts both in its read-only PT_LOAD): no read of either
// leaves it, whatever the section's contents say.
struct Segment {
  uintptr_t lo, hi;
  bool holds(uintptr_t at, size_t n) const { return at >= lo && at <= hi && hi - at >= n; }
};

// The FDE covering pc, from .eh_frame_hdr's sorted table; 0 if none. Only
// the layout every GNU linker writes is accepted (version 1, a udata4
// count, a datarel sdata4 table); others fall back to libunwind.
uintptr_t find_fde(uintptr_t pc, uintptr_t hdr, uintptr_t hdr_end, const Segment& seg) {
  if (!seg.holds(hdr, hdr_end - hdr)) return 0;
  Reader r{reinterpret_cast<const uint8_t*>(hdr), reinterpret_cast<const uint8_t*>(hdr_end)};
  const auto version = r.fixed<uint8_t>();
  const auto frame_ptr_enc = r.fixed<uint8_t>();
  const auto count_enc = r.fixed<uint8_t>();
  const auto table_enc = r.fixed<uint8_t>();
  if (!r.ok || version != 1 || count_enc != 0x03 || table_enc != 0x3b) return 0;
  r.encoded(frame_ptr_enc, hdr);
  const auto count = r.fixed<uint32_t>();
  if (!r.ok || count == 0 || !r.has(size_t(count) * 8)) return 0;
  struct Entry {
    int32_t start;
    int32_t fde;
  };
  const auto* table = reinterpret_cast<const Entry*>(r.p);
  const auto rel = intptr_t(pc) - intptr_t(hdr);
  // The last entry whose start is <= pc.
  uint32_t lo = 0, hi = count;
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (table[mid].start <= rel) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  if (table[lo].start > rel) return 0;
  return hdr + uintptr_t(intptr_t(table[lo].fde));
}

// ---- Executing the CFA program ---------------------------------------------

// The registers' rules this walk tracks.
struct Row {
  enum class Reg : uint8_t { Unchanged, Offset, Undefined, Other };
  uint64_t cfa_reg = kRegRsp;
  bool cfa_other = false;  // DW_CFA_def_cfa_expression
  int64_t cfa_offset = 0;
  Reg fp = Reg::Unchanged;
  int64_t fp_offset = 0;
  Reg ra = Reg::Unchanged;
  int64_t ra_offset = 0;
};

struct CieInfo {
  uint64_t code_align = 1;
  int64_t data_align = 1;
  unsigned ra_reg = kRegRa;
  uint8_t fde_enc = 0;  // absptr
  bool has_augmentation_data = false;
  bool signal_frame = false;
  const uint8_t* insns = nullptr;
  const uint8_t* end = nullptr;
};

// A record's bounds: [body, end) after its 4-byte length, inside the
// segment. 64-bit DWARF lengths (0xffffffff) never occur in .eh_frame and
// are refused.
bool record_bounds(uintptr_t at, const Segment& seg, const uint8_t** body, const uint8_t** end) {
  if (!seg.holds(at, 4)) return false;
  uint32_t length;
  memcpy(&length, reinterpret_cast<const void*>(at), sizeof length);
  if (length == 0 || length == 0xffffffff || !seg.holds(at + 4, length)) return false;
  *body = reinterpret_cast<const uint8_t*>(at + 4);
  *end = *body + length;
  return true;
}

bool parse_cie(uintptr_t at, const Segment& seg, CieInfo* cie) {
  const uint8_t* body;
  const uint8_t* end;
  if (!record_bounds(at, seg, &body, &end)) return false;
  Reader r{body, end};
  if (r.fixed<uint32_t>() != 0) return false;  // a CIE's id is 0 in .eh_frame
  const auto version = r.fixed<uint8_t>();
  if (version != 1 && version != 3) return false;
  const auto* aug = reinterpret_cast<const char*>(r.p);
  const size_t aug_len = strnlen(aug, size_t(end - r.p));
  if (aug_len == size_t(end - r.p)) return false;
  r.p += aug_len + 1;
  if (aug_len > 0 && aug[0] != 'z') return false;  // "eh" and other ancient forms
  cie->code_align = r.uleb();
  cie->data_align = r.sleb();
  cie->ra_reg = version == 1 ? r.fixed<uint8_t>() : unsigned(r.uleb());
  if (aug_len > 0) {
    cie->has_augmentation_data = true;
    const uint64_t data_len = r.uleb();
    if (!r.has(data_len)) return false;
    const uint8_t* data_end = r.p + data_len;
    for (size_t i = 1; i < aug_len && r.ok; ++i) {
      switch (aug[i]) {
        case 'R': cie->fde_enc = r.fixed<uint8_t>(); break;
        case 'L': r.fixed<uint8_t>(); break;
        case 'P': r.encoded(r.fixed<uint8_t>()); break;
        case 'S': cie->signal_frame = true; break;
        default: i = aug_len; break;  // unknown letter: the length lets us skip the rest
      }
    }
    r.p = data_end;
  }
  if (!r.ok || cie->ra_reg != kRegRa) return false;
  cie->insns = r.p;
  cie->end = end;
  return true;
}

// Runs one CFA program, stopping once the location passes `pc`. Returns
// false on an instruction it cannot decode or a state stack overflow.
bool run_program(const uint8_t* p, const uint8_t* end, const CieInfo& cie, uintptr_t pc, uintptr_t* loc, Row* row,
                 const Row& initial, Row* stack, unsigned* depth) {
  constexpr unsigned kMaxDepth = 8;
  Reader r{p, end};
  auto set_reg = [&](uint64_t reg, Row::Reg how, int64_t offset) {
    if (reg == kRegRbp) {
      row->fp = how;
      row->fp_offset = offset;
    } else if (reg == kRegRa) {
      row->ra = how;
      row->ra_offset = offset;
    }
  };
  auto restore_reg = [&](uint64_t reg) {
    if (reg == kRegRbp) {
      row->fp = initial.fp;
      row->fp_offset = initial.fp_offset;
    } else if (reg == kRegRa) {
      row->ra = initial.ra;
      row->ra_offset = initial.ra_offset;
    }
  };
  auto advance = [&](uint64_t delta) {
    *loc += delta * cie.code_align;
    return *loc <= pc;
  };
  while (r.has(1)) {
    const uint8_t op = r.fixed<uint8_t>();
    const uint8_t low = op & 0x3f;
    switch (op >> 6) {
      case 1:  // DW_CFA_advance_loc
        if (!advance(low)) return true;
        continue;
      case 2:  // DW_CFA_offset
        set_reg(low, Row::Reg::Offset, int64_t(r.uleb()) * cie.data_align);
        continue;
      case 3:  // DW_CFA_restore
        restore_reg(low);
        continue;
      default: break;
    }
    switch (op) {
      case 0x00: break;  // nop
      case 0x01: {       // set_loc
        const uintptr_t to = r.encoded(cie.fde_enc);
        if (to > pc) return r.ok;
        *loc = to;
        break;
      }
      case 0x02: if (!advance(r.fixed<uint8_t>())) return r.ok; break;
      case 0x03: if (!advance(r.fixed<uint16_t>())) return r.ok; break;
      case 0x04: if (!advance(r.fixed<uint32_t>())) return r.ok; break;
      case 0x05: {  // offset_extended
        const uint64_t reg = r.uleb();
        set_reg(reg, Row::Reg::Offset, int64_t(r.uleb()) * cie.data_align);
        break;
      }
      case 0x06: restore_reg(r.uleb()); break;
      case 0x07: set_reg(r.uleb(), Row::Reg::Undefined, 0); break;
      case 0x08: set_reg(r.uleb(), Row::Reg::Unchanged, 0); break;
      case 0x09: {  // register: saved in another register
        const uint64_t reg = r.uleb();
        r.uleb();
        set_reg(reg, Row::Reg::Other, 0);
        break;
      }
      case 0x0a:  // remember_state
        if (*depth == kMaxDepth) return false;
        stack[(*depth)++] = *row;
        break;
      case 0x0b:  // restore_state: the whole row, CFA included, as GCC's
                  // early-return epilogues (remember; pop; ret; restore) expect
        if (*depth == 0) return false;
        *row = stack[--*depth];
        break;
      case 0x0c:  // def_cfa
        row->cfa_reg = r.uleb();
        row->cfa_offset = int64_t(r.uleb());
        row->cfa_other = false;
        break;
      // def_cfa_register keeps the offset, so after an expression it
      // describes nothing: cfa_other stays set and the rule is Unknown.
      case 0x0d: row->cfa_reg = r.uleb(); break;
      case 0x0e: row->cfa_offset = int64_t(r.uleb()); break;
      case 0x0f: {  // def_cfa_expression
        const uint64_t len = r.uleb();
        if (!r.has(len)) return false;
        r.p += len;
        row->cfa_other = true;
        break;
      }
      case 0x10:    // expression
      case 0x16: {  // val_expression
        const uint64_t reg = r.uleb();
        const uint64_t len = r.uleb();
        if (!r.has(len)) return false;
        r.p += len;
        set_reg(reg, Row::Reg::Other, 0);
        break;
      }
      case 0x11: {  // offset_extended_sf
        const uint64_t reg = r.uleb();
        set_reg(reg, Row::Reg::Offset, r.sleb() * cie.data_align);
        break;
      }
      case 0x12:  // def_cfa_sf
        row->cfa_reg = r.uleb();
        row->cfa_offset = r.sleb() * cie.data_align;
        row->cfa_other = false;
        break;
      case 0x13: row->cfa_offset = r.sleb() * cie.data_align; break;
      case 0x14:    // val_offset: the register's value is CFA + n, not saved
      case 0x15: {  // val_offset_sf
        const uint64_t reg = r.uleb();
        if (op == 0x14) {
          r.uleb();
        } else {
          r.sleb();
        }
        set_reg(reg, Row::Reg::Other, 0);
        break;
      }
      case 0x2e: r.uleb(); break;  // GNU_args_size
      case 0x2f: {                 // GNU_negative_offset_extended
        const uint64_t reg = r.uleb();
        set_reg(reg, Row::Reg::Offset, -int64_t(r.uleb()) * cie.data_align);
        break;
      }
      default: return false;
    }
    if (!r.ok) return false;
  }
  return r.ok;
}

CfiRule decode_in_module(uintptr_t pc, uintptr_t hdr, uintptr_t hdr_end, const Segment& seg) {
  CfiRule rule;
  const uintptr_t fde = find_fde(pc, hdr, hdr_end, seg);
  if (fde == 0) return rule;
  const uint8_t* body;
  const uint8_t* end;
  if (!record_bounds(fde, seg, &body, &end)) return rule;
  Reader r{body, end};
  const auto cie_delta = r.fixed<uint32_t>();
  if (!r.ok || cie_delta == 0) return rule;
  CieInfo cie;
  if (!parse_cie(reinterpret_cast<uintptr_t>(body) - cie_delta, seg, &cie) || cie.signal_frame) return rule;
  const uintptr_t begin = r.encoded(cie.fde_enc);
  const uintptr_t range = r.encoded(cie.fde_enc, 0, true);
  if (!r.ok || pc < begin || pc - begin >= range) return rule;
  if (cie.has_augmentation_data) {
    const uint64_t len = r.uleb();
    if (!r.has(len)) return rule;
    r.p += len;
  }
  Row row;
  Row stack[8];
  unsigned depth = 0;
  uintptr_t loc = begin;
  // The CIE's initial instructions set the row every FDE starts from, and
  // that DW_CFA_restore goes back to.
  if (!run_program(cie.insns, cie.end, cie, ~uintptr_t{0}, &loc, &row, row, stack, &depth)) return rule;
  const Row initial = row;
  loc = begin;
  depth = 0;
  if (!run_program(r.p, end, cie, pc, &loc, &row, initial, stack, &depth)) return rule;

  if (row.ra == Row::Reg::Undefined) {
    rule.kind = CfiRule::Kind::Outermost;
    return rule;
  }
  const bool offsets_fit = row.cfa_offset >= INT32_MIN && row.cfa_offset <= INT32_MAX &&
                           row.fp_offset >= INT32_MIN && row.fp_offset <= INT32_MAX &&
                           row.ra_offset >= INT32_MIN && row.ra_offset <= INT32_MAX;
  if (row.cfa_other || row.ra != Row::Reg::Offset || row.fp == Row::Reg::Other || row.fp == Row::Reg::Undefined ||
      !offsets_fit || (row.cfa_reg != kRegRsp && row.cfa_reg != kRegRbp)) {
    return rule;
  }
  rule.kind = row.cfa_reg == kRegRsp ? CfiRule::Kind::SpBased : CfiRule::Kind::FpBased;
  rule.cfa_offset = int32_t(row.cfa_offset);
  rule.fp_saved = row.fp == Row::Reg::Offset;
  rule.fp_offset = int32_t(row.fp_offset);
  rule.ra_offset = int32_t(row.ra_offset);
  return rule;
}

struct ModuleSearch {
  uintptr_t pc;
  CfiRule rule;
};

// Decodes inside dl_iterate_phdr's callback: the loader's lock is held, so
// the module cannot be unloaded while its .eh_frame is read.
int decode_in_callback(dl_phdr_info* info, size_t, void* data) {
  auto* s = static_cast<ModuleSearch*>(data);
  bool inside = false;
  const ElfW(Phdr)* hdr = nullptr;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD) {
      const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
      if (s->pc >= lo && s->pc - lo < ph.p_memsz) inside = true;
    } else if (ph.p_type == PT_GNU_EH_FRAME) {
      hdr = &ph;
    }
  }
  if (!inside) return 0;
  if (hdr == nullptr) return 1;
  const uintptr_t hdr_at = info->dlpi_addr + hdr->p_vaddr;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const Segment seg{info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_filesz};
    if (seg.holds(hdr_at, 1)) {
      s->rule = decode_in_module(s->pc, hdr_at, hdr_at + hdr->p_memsz, seg);
      break;
    }
  }
  return 1;
}

CfiRule decode_rule(uintptr_t pc) {
  ModuleSearch s{pc, CfiRule{}};
  dl_iterate_phdr(decode_in_callback, &s);
  return s.rule;
}

// ---- Rule cache ---------------------------------------------------------------
// Open addressing, one word per entry: the pc's low 32 bits above a 32-bit
// rule, so an entry is read and written with one atomic access (no torn
// pairs) and the whole table is 128 KiB, small enough to stay in cache
// beside the program's own data. Two pcs with the same low 32 bits (modules
// 4 GiB apart) could share a rule; the walk's frames then differ from
// libunwind's for that chain, which the per-chain check in unwind.cpp
// catches, so the cost is a slower capture, never a wrong trusted stack.
//
// The rule half is shaped for the walk's loop. Only rules the walk follows
// (return address at CFA - 8, where every x86-64 call puts it; CFA offset
// below 512 KiB; saved rbp within 1 KiB of the CFA) are "walkable";
// Outermost and Unknown are kept too, so that a pc is decoded once.
constexpr size_t kRuleSlots = size_t{1} << 14;
constexpr unsigned kRuleProbe = 8;
constinit std::atomic<uint64_t> g_rules[kRuleSlots] = {};

constexpr uint64_t kPresent = 1;  // so that an occupied word is never 0
constexpr uint64_t kWalkable = 1 << 1;
constexpr uint64_t kOutermost = 1 << 2;
constexpr uint64_t kFpBased = 1 << 3;
constexpr uint64_t kFpSaved = 1 << 4;
constexpr unsigned kFpShift = 5;    // int8: saved rbp's offset from the CFA / 8
constexpr unsigned kCfaShift = 13;  // 19 bits: CFA offset from rsp or rbp
constexpr int32_t kMaxCfaOffset = (1 << 19) - 1;

uint32_t pack(const CfiRule& rule) {
  switch (rule.kind) {
    case CfiRule::Kind::Outermost: return kPresent | kOutermost;
    case CfiRule::Kind::SpBased:
    case CfiRule::Kind::FpBased: break;
    case CfiRule::Kind::Unknown: return kPresent;
  }
  constexpr auto kWord = int32_t(sizeof(uintptr_t));
  const int32_t fp8 = rule.fp_offset / kWord;
  if (rule.ra_offset != -kWord || rule.cfa_offset <= 0 || rule.cfa_offset > kMaxCfaOffset ||
      rule.fp_offset % kWord != 0 || fp8 < INT8_MIN || fp8 > INT8_MAX) {
    return kPresent;
  }
  return uint32_t(kPresent | kWalkable | (rule.kind == CfiRule::Kind::FpBased ? kFpBased : 0) |
                  (rule.fp_saved ? kFpSaved : 0) | (uint64_t(uint8_t(int8_t(fp8))) << kFpShift) |
                  (uint64_t(rule.cfa_offset) << kCfaShift));
}

HEAPGUARD_FAST_PATH int32_t cfa_offset_of(uint64_t w) { return int32_t((w >> kCfaShift) & kMaxCfaOffset); }
HEAPGUARD_FAST_PATH int32_t fp_offset_of(uint64_t w) {
  return int32_t(int8_t(uint8_t(w >> kFpShift))) * int32_t(sizeof(uintptr_t));
}

CfiRule unpack(uint64_t w) {
  CfiRule rule;
  if (w & kOutermost) rule.kind = CfiRule::Kind::Outermost;
  if ((w & kWalkable) == 0) return rule;
  rule.kind = (w & kFpBased) ? CfiRule::Kind::FpBased : CfiRule::Kind::SpBased;
  rule.fp_saved = (w & kFpSaved) != 0;
  rule.cfa_offset = cfa_offset_of(w);
  rule.fp_offset = rule.fp_saved ? fp_offset_of(w) : 0;
  rule.ra_offset = -int32_t(sizeof(uintptr_t));
  return rule;
}

HEAPGUARD_FAST_PATH size_t slot_of(uintptr_t pc) { return size_t((pc * 0x9e3779b97f4a7c15ULL) >> 50); }

// The cached rule for pc (its low 32 bits of the entry), 0 when absent.
HEAPGUARD_FAST_PATH uint64_t cached_word(uintptr_t pc) {
  const uint64_t key = uint64_t(uint32_t(pc)) << 32;
  const size_t home = slot_of(pc);
  for (unsigned i = 0; i < kRuleProbe; ++i) {
    const uint64_t e = g_rules[(home + i) & (kRuleSlots - 1)].load(std::memory_order_relaxed);
    if ((e & ~uint64_t{0xffffffff}) == key && e != 0) return e;
    if (e == 0) return 0;
  }
  return 0;
}

void store_word(uintptr_t pc, uint32_t rule) {
  const uint64_t entry = (uint64_t(uint32_t(pc)) << 32) | rule;
  const size_t home = slot_of(pc);
  for (unsigned i = 0; i < kRuleProbe; ++i) {
    auto& slot = g_rules[(home + i) & (kRuleSlots - 1)];
    uint64_t e = slot.load(std::memory_order_relaxed);
    if (e == 0 && slot.compare_exchange_strong(e, entry, std::memory_order_relaxed)) return;
    if ((e >> 32) == uint32_t(pc)) {
      slot.store(entry, std::memory_order_relaxed);
      return;
    }
  }
  // A full neighbourhood: replace the home slot (the evicted pc is decoded
  // again when next seen).
  g_rules[home].store(entry, std::memory_order_relaxed);
}

// Decodes and caches the rule for a pc the cache lacks; out of line, so
// the walk's loop keeps only the lookup.
HEAPGUARD_SLOW_PATH uint64_t decode_and_cache(uintptr_t pc) {
  // dl_iterate_phdr takes the loader's lock: not while a fork is waiting
  // (see enter_loader_section). The pc is then not followed this time.
  if (!enter_loader_section()) return kPresent;
  const uint32_t rule = pack(decode_rule(pc));
  leave_loader_section();
  store_word(pc, rule);
  return rule;
}

HEAPGUARD_FAST_PATH uint64_t word_at(uintptr_t pc) {
  const uint64_t w = cached_word(pc);
  return HEAPGUARD_LIKELY(w != 0) ? w : decode_and_cache(pc);
}

}  // namespace

CfiRule cfi_rule_at(uintptr_t pc) { return unpack(word_at(pc)); }

namespace {

// ---- The thread's previous walk -------------------------------------------
// Consecutive captures on a thread share most of their frames: the callers
// of the code that allocates. A frame's state (pc, sp, fp) is fixed while
// it is live, so once this walk reaches a state the previous walk also
// passed through, the rest of that walk is still right if the stack words
// it read (each return address, each saved rbp) still hold what it read:
// those checks are independent loads, instead of one dependent lookup and
// load per frame.
constexpr unsigned kMemoFrames = 24;
constexpr int16_t kNoFpSlot = INT16_MIN;
struct WalkMemo {
  uintptr_t hi;   // top of the stack it was on (the thread's own); 0: no memo
  unsigned n;     // states recorded
  bool cut;       // the walk stopped at its `max`, not at the stack's end
  uintptr_t pc[kMemoFrames], sp[kMemoFrames], fp[kMemoFrames];
  // Where state i + 1's fp was read: sp[i + 1] + fp_slot[i], or kNoFpSlot
  // when the frame left rbp unchanged.
  int16_t fp_slot[kMemoFrames];
};
constinit thread_local WalkMemo t_memo{};
constinit thread_local uint64_t t_replays = 0;

// Whether the previous walk's states from `m` on still describe the stack.
HEAPGUARD_FAST_PATH bool memo_still_holds(const WalkMemo& memo, unsigned m) {
  uintptr_t diff = 0;
  for (unsigned i = m; i + 1 < memo.n; ++i) {
    diff |= *reinterpret_cast<const uintptr_t*>(memo.sp[i + 1] - sizeof(uintptr_t)) ^ memo.pc[i + 1];
    if (memo.fp_slot[i] != kNoFpSlot) {
      diff |= *reinterpret_cast<const uintptr_t*>(memo.sp[i + 1] + uintptr_t(intptr_t(memo.fp_slot[i]))) ^
              memo.fp[i + 1];
    }
  }
  return diff == 0;
}

}  // namespace

unsigned cfi_walk(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t hi, uintptr_t* out, unsigned max) {
  constexpr uintptr_t kWord = sizeof(uintptr_t);
  WalkMemo& memo = t_memo;
  // This walk's states, becoming the next memo.
  uintptr_t st_sp[kMemoFrames], st_fp[kMemoFrames];
  int16_t st_slot[kMemoFrames];
  const bool use_memo = memo.hi == hi && memo.n > 0 && max <= kMemoFrames;
  unsigned m = 0;  // first memo state not below sp
  unsigned n = 0;
  bool cut = false;
  bool recordable = true;
  while (n < max) {
    if (use_memo) {
      while (m < memo.n && memo.sp[m] < sp) ++m;
      if (m < memo.n && memo.sp[m] == sp && memo.pc[m] == pc && memo.fp[m] == fp &&
          (!memo.cut || n + (memo.n - m) >= max) && memo_still_holds(memo, m)) {
        unsigned take = memo.n - m;
        if (take > max - n) take = max - n;
        // The new memo: this walk's states so far, then the old one's from m.
        for (unsigned i = 0; i < take; ++i) out[n + i] = memo.pc[m + i];
        const unsigned keep = n + take;
        if (n != m) {
          for (unsigned i = 0; i < take; ++i) {
            const unsigned from = n < m ? m + i : m + take - 1 - i;
            const unsigned to = from - m + n;
            memo.pc[to] = memo.pc[from];
            memo.sp[to] = memo.sp[from];
            memo.fp[to] = memo.fp[from];
            memo.fp_slot[to] = memo.fp_slot[from];
          }
        }
        for (unsigned i = 0; i < n; ++i) {
          memo.pc[i] = out[i];
          memo.sp[i] = st_sp[i];
          memo.fp[i] = st_fp[i];
          memo.fp_slot[i] = st_slot[i];
        }
        memo.cut = memo.cut || take < memo.n - m || keep == max;
        memo.n = keep;
        ++t_replays;
        return keep;
      }
    }
    out[n] = pc;
    if (n < kMemoFrames) {
      st_sp[n] = sp;
      st_fp[n] = fp;
      st_slot[n] = kNoFpSlot;
    }
    ++n;
    if (n == max) {
      cut = true;
      break;
    }
    const uint64_t w = word_at(pc - 1);
    if ((w & kWalkable) == 0) break;
    const uintptr_t cfa = ((w & kFpBased) ? fp : sp) + uintptr_t(cfa_offset_of(w));
    // The CFA is the caller's stack pointer: it moves up the stack, and
    // the return address below it is then inside [sp, hi).
    if (cfa <= sp || cfa > hi || (cfa & (kWord - 1)) != 0) break;
    const uintptr_t ra = *reinterpret_cast<const uintptr_t*>(cfa - kWord);
    if (w & kFpSaved) {
      // Saved registers live in the frame itself, between sp and the CFA
      // (pack() keeps only 8-byte multiples, so `at` is aligned too).
      const int32_t off = fp_offset_of(w);
      const uintptr_t at = cfa + uintptr_t(intptr_t(off));
      if (at < sp || at >= cfa) break;
      fp = *reinterpret_cast<const uintptr_t*>(at);
      if (n - 1 < kMemoFrames) st_slot[n - 1] = int16_t(off);
    }
    if (ra < 4096) {
      // An end decided by a stack word the memo does not record: not a
      // walk to replay.
      recordable = false;
      break;
    }
    sp = cfa;
    pc = ra;
  }
  if (recordable && n <= kMemoFrames) {
    for (unsigned i = 0; i < n; ++i) {
      memo.pc[i] = out[i];
      memo.sp[i] = st_sp[i];
      memo.fp[i] = st_fp[i];
      memo.fp_slot[i] = st_slot[i];
    }
    memo.n = n;
    memo.cut = cut;
    memo.hi = hi;
  } else {
    memo.hi = 0;
  }
  return n;
}

uint64_t cfi_walk_replays() { return t_replays; }

void reset_cfi_cache_for_testing() {
  for (auto& slot : g_rules) slot.store(0, std::memory_order_relaxed);
  t_memo.hi = 0;
}

}  // namespace heapguard::pal
