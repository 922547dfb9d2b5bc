// SPDX-License-Identifier: Apache-2.0
// ElfImage: bounds-checked reading of ELF64 headers and symbol tables (see
// elf_reader.h). The input is a file on disk, which may be truncated, replaced
// or crafted, so nothing read from it is trusted before a range check.
#include "report/elf_reader.h"

#include <elf.h>

#include <cstring>

namespace heapguard {

namespace {

#if defined(__x86_64__)
constexpr uint16_t kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kMachine = EM_AARCH64;
#elif defined(__riscv)
constexpr uint16_t kMachine = EM_RISCV;
#else
constexpr uint16_t kMachine = EM_NONE;  // accept any: only checked when known
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr unsigned char kData = ELFDATA2LSB;
#else
constexpr unsigned char kData = ELFDATA2MSB;
#endif

// [offset, offset + count*entry) inside [0, size), without overflow.
bool range_ok(uint64_t offset, uint64_t count, uint64_t entry, size_t size) {
  if (offset > size) return false;
  if (entry != 0 && count > (size - offset) / entry) return false;
  return true;
}

int binding_rank(unsigned char info) {
  switch (ELF64_ST_BIND(info)) {
    case STB_GLOBAL: return 2;
    case STB_WEAK: return 1;
    default: return 0;
  }
}

// Bounded: the string table is not trusted to hold a NUL.
size_t leading_underscores(const char* s, size_t max) {
  size_t n = 0;
  while (n < max && s[n] == '_') ++n;
  return n;
}

}  // namespace

bool ElfImage::init(const void* data, size_t size) {
  *this = ElfImage{};
  if (data == nullptr || size < sizeof(Elf64_Ehdr)) return false;
  const auto* eh = static_cast<const Elf64_Ehdr*>(data);
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      eh->e_ident[EI_DATA] != kData) {
    return false;
  }
  if (kMachine != EM_NONE && eh->e_machine != kMachine) return false;
  if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) return false;
  data_ = static_cast<const unsigned char*>(data);
  size_ = size;
  if (eh->e_phentsize == sizeof(Elf64_Phdr) && eh->e_phnum != 0 &&
      range_ok(eh->e_phoff, eh->e_phnum, sizeof(Elf64_Phdr), size)) {
    phdrs_ = data_ + eh->e_phoff;
    phnum_ = eh->e_phnum;
  }
  // A file without section headers (stripped with sstrip) still gives a
  // load bias: module and offset are known, only the names are missing.
  index_sections();
  return true;
}

bool ElfImage::index_sections() {
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(data_);
  if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 ||
      !range_ok(eh->e_shoff, eh->e_shnum, sizeof(Elf64_Shdr), size_)) {
    return false;
  }
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(data_ + eh->e_shoff);
  size_t shnum = eh->e_shnum;
  for (size_t i = 0; i < shnum; ++i) {
    if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
    if (sh[i].sh_entsize != sizeof(Elf64_Sym)) continue;
    if (!range_ok(sh[i].sh_offset, 1, sh[i].sh_size, size_)) continue;
    size_t link = sh[i].sh_link;
    if (link >= shnum || sh[link].sh_type != SHT_STRTAB) continue;
    if (!range_ok(sh[link].sh_offset, 1, sh[link].sh_size, size_) || sh[link].sh_size == 0) continue;
    SymbolTable t;
    t.symbols = data_ + sh[i].sh_offset;
    t.count = sh[i].sh_size / sizeof(Elf64_Sym);
    t.strings = reinterpret_cast<const char*>(data_ + sh[link].sh_offset);
    t.strings_size = sh[link].sh_size;
    if (sh[i].sh_type == SHT_SYMTAB) {
      symtab_ = t;
    } else {
      dynsym_ = t;
    }
  }
  return symtab_.count != 0 || dynsym_.count != 0;
}

bool ElfImage::load_bias(uintptr_t start, uint64_t offset, size_t page_size, uintptr_t* bias) const {
  if (phdrs_ == nullptr || page_size == 0) return false;
  const auto* ph = static_cast<const Elf64_Phdr*>(phdrs_);
  const uint64_t page_mask = ~static_cast<uint64_t>(page_size - 1);
  // Prefer an executable segment: with old linkers text and read-only data
  // share pages, and the pc's mapping is the executable one.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < phnum_; ++i) {
      if (ph[i].p_type != PT_LOAD) continue;
      if (pass == 0 && (ph[i].p_flags & PF_X) == 0) continue;
      uint64_t file_start = ph[i].p_offset & page_mask;
      uint64_t file_end = ph[i].p_offset + (ph[i].p_filesz != 0 ? ph[i].p_filesz : 1);
      if (offset < file_start || offset >= file_end) continue;
      // The kernel maps PAGE_DOWN(p_offset) at bias + PAGE_DOWN(p_vaddr);
      // the mapping may start further in (split by mprotect).
      uint64_t vaddr_at_start = (ph[i].p_vaddr & page_mask) + (offset - file_start);
      *bias = start - static_cast<uintptr_t>(vaddr_at_start);
      return true;
    }
  }
  return false;
}

bool ElfImage::find_in(const SymbolTable& table, uint64_t vaddr, ElfSymbol* out) const {
  const auto* syms = static_cast<const Elf64_Sym*>(table.symbols);
  const Elf64_Sym* best = nullptr;
  for (size_t i = 0; i < table.count; ++i) {
    const Elf64_Sym& s = syms[i];
    unsigned type = ELF64_ST_TYPE(s.st_info);
    if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
    if (s.st_shndx == SHN_UNDEF || s.st_value == 0) continue;
    uint64_t size = s.st_size != 0 ? s.st_size : 1;
    if (vaddr < s.st_value || vaddr - s.st_value >= size) continue;
    if (s.st_name == 0 || s.st_name >= table.strings_size) continue;
    if (best != nullptr) {
      uint64_t best_size = best->st_size != 0 ? best->st_size : 1;
      if (size != best_size) {
        if (size > best_size) continue;
      } else if (binding_rank(s.st_info) != binding_rank(best->st_info)) {
        if (binding_rank(s.st_info) < binding_rank(best->st_info)) continue;
      } else if (leading_underscores(table.strings + s.st_name, table.strings_size - s.st_name) >=
                 leading_underscores(table.strings + best->st_name,
                                     table.strings_size - best->st_name)) {
        continue;
      }
    }
    best = &s;
  }
  if (best == nullptr) return false;
  // The name must end inside the string table.
  const char* name = table.strings + best->st_name;
  if (memchr(name, '\0', table.strings_size - best->st_name) == nullptr) return false;
  out->name = name;
  out->value = best->st_value;
  out->size = best->st_size;
  return true;
}

bool ElfImage::find_function(uint64_t vaddr, ElfSymbol* out) const {
  if (symtab_.count != 0 && find_in(symtab_, vaddr, out)) return true;
  return dynsym_.count != 0 && find_in(dynsym_, vaddr, out);
}

}  // namespace heapguard
