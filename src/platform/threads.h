// SPDX-License-Identifier: Apache-2.0
// Stop the world (layer platform): every other thread of the process is
// parked in a signal handler, its registers, stack pointer and thread
// pointer saved, so the leak check can read memory that no thread changes
// meanwhile; and the process's memory map read from /proc/self/maps.
// Neither calls malloc nor takes a lock another thread could hold: the
// stopped threads may be anywhere, inside the allocator or libc included.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::pal {

// Register words kept per thread: x86-64 has 23 gregs, aarch64 31 + sp.
inline constexpr unsigned kMaxSavedRegisters = 34;
// Threads the world stop can hold; more are counted but not stopped.
inline constexpr unsigned kMaxStoppedThreads = 8192;

struct ThreadSnapshot {
  uint32_t tid = 0;
  // True when the thread ran the stop handler: sp, thread_pointer and
  // registers are exact and the thread is parked until resume_the_world().
  bool stopped = false;
  uintptr_t sp = 0;              // 0: unknown (its stack cannot be scanned)
  uintptr_t thread_pointer = 0;  // fs base (x86-64) / tpidr_el0; 0: unknown
  unsigned register_count = 0;
  uintptr_t registers[kMaxSavedRegisters] = {};
};

struct StoppedWorld {
  ThreadSnapshot* threads = nullptr;  // [0] is the calling thread
  unsigned count = 0;
  unsigned not_stopped = 0;  // threads that never answered (signal blocked, exiting)
  unsigned overflow = 0;     // threads beyond kMaxStoppedThreads, not stopped
};

// Stores the caller's callee-saved registers and returns how many. Call it
// first thing in the function whose frame starts the scan of the calling
// thread's stack: values the callers keep only in registers are then roots.
unsigned capture_registers(uintptr_t* out, unsigned max);

// Stops every other thread of the process: lists /proc/self/task, sends
// each thread kStopSignal (SIGRTMAX-5: glibc reserves the first real-time
// signals for itself and programs conventionally count up from SIGRTMIN;
// our handler is installed only for the duration of the stop, the
// program's disposition restored afterwards) and waits, up to a timeout,
// for each to save its context and park on a futex. Lists again until no
// new thread appears. A thread that never answers (it blocks the signal, or
// is exiting) keeps stopped == false; if it is blocked in a system call,
// its sp and syscall arguments come from /proc/self/task/TID/syscall.
// own_sp: where the calling thread's stack scan should start;
// own_registers: from capture_registers. Returns false (nothing stopped)
// when no memory or no signal could be had. Not reentrant; one stop at a
// time per process. Must be followed by resume_the_world().
bool stop_the_world(uintptr_t own_sp, const uintptr_t* own_registers, unsigned own_register_count,
                    StoppedWorld* out);
// Releases the parked threads. The snapshot stays readable until the next stop.
void resume_the_world();

int stop_signal();

// The static TLS block and thread descriptor of the thread whose thread
// pointer is `thread_pointer`: [begin, end), exactly the bytes the C
// library lays out around the thread pointer (x86-64: TLS below it, the
// descriptor above; aarch64: the descriptor below, TLS above). From glibc's
// own figures (_dl_get_tls_static_info, _thread_db_sizeof_pthread), looked
// up by stop_the_world before it stops anything (the lookup may take the
// loader's lock). False when unknown (another libc, no stop yet): callers
// then fall back to a window around the thread pointer.
// The leak check needs the exact extent: the mapping that holds the main
// thread's TLS is anonymous, and the kernel merges it with any adjacent
// anonymous mapping of the same protection, heapguard's own tables
// included when mapping names are unsupported.
bool static_tls_range(uintptr_t thread_pointer, uintptr_t* begin, uintptr_t* end);

// The dynamic thread vector of the same thread (glibc: its length word,
// generation and one {block, to_free} pair per module), when static TLS
// figures are known and the vector is mapped. The main thread's vector is
// not a heap block (the loader allocates it with its own startup
// allocator, next to the TLS), yet it holds the only pointers to the
// dynamic TLS blocks of dlopen'ed modules.
bool thread_vector_range(uintptr_t thread_pointer, uintptr_t* begin, uintptr_t* end);

// One line of /proc/self/maps.
struct Mapping {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  bool readable = false, writable = false, executable = false, shared = false;
  uint64_t offset = 0;      // file offset of begin
  uint64_t inode = 0;       // 0 for anonymous and special mappings
  uint32_t dev_major = 0, dev_minor = 0;
  enum class Kind : uint8_t {
    File,       // a path
    Anonymous,  // no name
    Named,      // "[stack]", "[heap]", "[vdso]", "[anon:NAME]"...
  } kind = Kind::Anonymous;
  bool is_stack = false;    // "[stack]"
  bool heapguard = false;   // "[anon:heapguard...]": our own metadata or heap
};

// Reads /proc/self/maps with raw system calls into a fixed buffer, one
// mapping per next(). Lines too long for the buffer are cut (the path is
// only classified, never kept).
class MappingReader {
 public:
  MappingReader();
  ~MappingReader();
  MappingReader(const MappingReader&) = delete;
  MappingReader& operator=(const MappingReader&) = delete;
  bool ok() const { return fd_ >= 0; }
  bool next(Mapping* out);

 private:
  bool fill();
  static bool parse_line(const char* line, size_t len, Mapping* out);
  int fd_ = -1;
  size_t len_ = 0;
  size_t pos_ = 0;
  char buf_[8192];
};

// The span of the writable PT_LOAD segments (their RELRO part, made
// read-only after relocation, and their bss included) of the ELF image
// whose offset-0 mapping starts at image_begin and is mapped_bytes long.
// False when it is not a readable 64-bit ELF image or has no such segment.
// The leak check's module roots are exactly these spans: the anonymous
// mapping after a module's data may be bss or anyone's mapping (heapguard's
// own tables, on kernels without mapping names).
bool elf_data_span(uintptr_t image_begin, size_t mapped_bytes, uintptr_t* begin, uintptr_t* end);

// Where the dynamic loader (ld.so) is mapped (AT_BASE); 0 in a static
// executable.
uintptr_t dynamic_loader_base();

// The identity (inode, device) of the main executable's file, from
// stat("/proc/self/exe"); false when unknown.
bool main_executable_identity(uint64_t* inode, uint32_t* dev_major, uint32_t* dev_minor);

}  // namespace heapguard::pal
