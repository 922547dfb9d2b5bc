// SPDX-License-Identifier: Apache-2.0
// ElfImage (report layer): a read-only view of a 64-bit ELF file mapped in
// memory, for the in-process symbolizer. It finds a module's load bias from
// its program headers and the function symbol enclosing an address in
// .symtab (static functions of an executable built without -rdynamic), then
// .dynsym. Every offset, count and string read from the file is bounds-checked
// against the image, so a truncated or hostile file yields "not found", never
// a wild read. No allocation: it only points into the image.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard {

struct ElfSymbol {
  const char* name = nullptr;  // NUL-terminated inside the image
  uint64_t value = 0;          // st_value: the function's link-time address
  uint64_t size = 0;
};

class ElfImage {
 public:
  // Validates the header (ELF64, this machine's byte order and architecture)
  // and indexes the program headers and the symbol tables of [data,
  // data+size). False when it is not such an ELF file. The image must stay
  // mapped while the ElfImage is used.
  bool init(const void* data, size_t size);

  // The load bias of the module (runtime address = link-time address + bias)
  // from one of its mappings: `start` mapped at file offset `offset` (a
  // multiple of page_size, as /proc/self/maps shows it). False when no
  // PT_LOAD segment covers that offset.
  bool load_bias(uintptr_t start, uint64_t offset, size_t page_size, uintptr_t* bias) const;

  // The function symbol (STT_FUNC or STT_GNU_IFUNC, defined) whose
  // [value, value+size) holds vaddr, looked up in .symtab, then .dynsym.
  // Among aliases the narrowest range wins, then global over weak over
  // local binding, then the name with fewer leading underscores
  // (`malloc` over `__libc_malloc`). Linear in the table size.
  bool find_function(uint64_t vaddr, ElfSymbol* out) const;

  bool has_symtab() const { return symtab_.count != 0; }
  bool has_dynsym() const { return dynsym_.count != 0; }

 private:
  struct SymbolTable {
    const void* symbols = nullptr;  // Elf64_Sym[count]
    size_t count = 0;
    const char* strings = nullptr;
    size_t strings_size = 0;
  };

  bool index_sections();
  bool find_in(const SymbolTable& table, uint64_t vaddr, ElfSymbol* out) const;

  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
  const void* phdrs_ = nullptr;  // Elf64_Phdr[phnum_]
  size_t phnum_ = 0;
  SymbolTable symtab_;
  SymbolTable dynsym_;
};

}  // namespace heapguard
