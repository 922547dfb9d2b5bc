// SPDX-License-Identifier: Apache-2.0
// Stop the world and the memory map (layer platform), Linux. Only raw
// system calls and async-signal-safe libc calls: the threads being stopped
// may hold any lock, the allocator's and libc's included.
#include "platform/threads.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>

#include "platform/platform.h"

namespace heapguard::pal {
namespace {

// A thread that has not answered within this time is left running: it
// blocks the signal, is exiting, or is stopped by a debugger.
constexpr long kAnswerTimeoutMs = 1000;
constexpr unsigned kMaxRounds = 16;

ThreadSnapshot* g_threads = nullptr;  // kMaxStoppedThreads entries, mapped at the first stop
std::atomic<unsigned> g_count{0};
// Odd while a stop is in progress. A handler parks until it changes, so a
// late signal (a thread that unblocked it after the timeout) finds an even
// value and returns at once.
std::atomic<uint32_t> g_epoch{0};
std::atomic<uint32_t> g_answered{0};
struct sigaction g_saved_action;
bool g_restore_action = false;

// glibc's static TLS size (TLS blocks of the initial modules, the surplus
// for later initial-exec ones and, where the descriptor follows the thread
// pointer, the descriptor) and the descriptor's size (struct pthread).
// Zero until looked up, or when this is not glibc.
std::atomic<size_t> g_static_tls_size{0};
std::atomic<size_t> g_thread_descriptor_size{0};
std::atomic<bool> g_tls_info_looked_up{false};

// Both symbols are GLIBC_PRIVATE, looked up rather than linked so that
// another libc only loses the exact bounds. dlsym may take the loader's
// lock and, when a symbol is missing, allocate its error message: never
// called with the world stopped, nor from the allocator.
void look_up_static_tls_info() {
  if (g_tls_info_looked_up.load(std::memory_order_acquire)) return;
  using StaticInfoFn = void (*)(size_t*, size_t*);
  auto info = reinterpret_cast<StaticInfoFn>(dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info"));
  const auto* descriptor = static_cast<const uint32_t*>(dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread"));
  if (info != nullptr && descriptor != nullptr && *descriptor != 0) {
    size_t size = 0, align = 0;
    info(&size, &align);
    g_thread_descriptor_size.store(*descriptor, std::memory_order_relaxed);
    g_static_tls_size.store(size, std::memory_order_relaxed);
  }
  g_tls_info_looked_up.store(true, std::memory_order_release);
}

long raw_futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* timeout) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, timeout, nullptr, 0);
}

uint32_t raw_gettid() { return uint32_t(syscall(SYS_gettid)); }

uintptr_t read_thread_pointer() {
  uintptr_t tp = 0;
#if defined(__x86_64__)
  // glibc keeps the TCB's own address in its first word (tcbhead_t.tcb).
  __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
  __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#endif
  return tp;
}

unsigned save_context(const void* context, uintptr_t* regs, uintptr_t* sp) {
  const auto* uc = static_cast<const ucontext_t*>(context);
  unsigned n = 0;
#if defined(__x86_64__)
  for (int i = 0; i < NGREG && n < kMaxSavedRegisters; ++i) regs[n++] = uintptr_t(uc->uc_mcontext.gregs[i]);
  *sp = uintptr_t(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  for (int i = 0; i < 31 && n < kMaxSavedRegisters; ++i) regs[n++] = uintptr_t(uc->uc_mcontext.regs[i]);
  *sp = uintptr_t(uc->uc_mcontext.sp);
#else
  (void)uc;
  *sp = 0;
#endif
  return n;
}

void stop_handler(int, siginfo_t* info, void* context) {
  int saved_errno = errno;
  uint32_t epoch = g_epoch.load(std::memory_order_acquire);
  // Only our own tgkill during a stop: not a kill(2) from another process.
  if ((epoch & 1) == 0 || info == nullptr || info->si_code != SI_TKILL || info->si_pid != getpid()) {
    errno = saved_errno;
    return;
  }
  uint32_t tid = raw_gettid();
  unsigned count = g_count.load(std::memory_order_acquire);
  ThreadSnapshot* me = nullptr;
  for (unsigned i = 1; i < count; ++i) {
    if (g_threads[i].tid == tid) {
      me = &g_threads[i];
      break;
    }
  }
  if (me != nullptr && !me->stopped) {
    me->register_count = save_context(context, me->registers, &me->sp);
    me->thread_pointer = read_thread_pointer();
    __atomic_store_n(&me->stopped, true, __ATOMIC_RELEASE);
    g_answered.fetch_add(1, std::memory_order_acq_rel);
    raw_futex(&g_answered, FUTEX_WAKE_PRIVATE, 1, nullptr);
    while (g_epoch.load(std::memory_order_acquire) == epoch) raw_futex(&g_epoch, FUTEX_WAIT_PRIVATE, epoch, nullptr);
  }
  errno = saved_errno;
}

bool known(uint32_t tid, unsigned count) {
  for (unsigned i = 0; i < count; ++i)
    if (g_threads[i].tid == tid) return true;
  return false;
}

long monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return long(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Signals every thread listed in /proc/self/task that has no slot yet.
// Returns how many were signalled; *overflow counts those without room.
unsigned signal_new_threads(unsigned* overflow) {
  int fd = int(syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd < 0) return 0;
  unsigned signalled = 0;
  alignas(8) char buf[4096];
  pid_t pid = getpid();
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
      off += d->d_reclen;
      uint32_t tid = 0;
      const char* s = d->d_name;
      if (*s < '0' || *s > '9') continue;
      for (; *s >= '0' && *s <= '9'; ++s) tid = tid * 10 + uint32_t(*s - '0');
      unsigned count = g_count.load(std::memory_order_relaxed);
      if (known(tid, count)) continue;
      if (count == kMaxStoppedThreads) {
        ++*overflow;
        continue;
      }
      ThreadSnapshot& t = g_threads[count];
      t = ThreadSnapshot{};
      t.tid = tid;
      // Published before the signal, so the handler finds its slot.
      g_count.store(count + 1, std::memory_order_release);
      if (syscall(SYS_tgkill, pid, tid, stop_signal()) == 0) ++signalled;
      else t.tid = 0;  // exited meanwhile: an empty slot nobody matches
    }
  }
  syscall(SYS_close, fd);
  return signalled;
}

uint64_t parse_hex(const char** p) {
  const char* s = *p;
  while (*s == ' ') ++s;
  if (s[0] == '0' && s[1] == 'x') s += 2;
  uint64_t v = 0;
  for (;; ++s) {
    char c = *s;
    if (c >= '0' && c <= '9') v = v * 16 + uint64_t(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + uint64_t(c - 'a' + 10);
    else break;
  }
  *p = s;
  return v;
}

// A thread that did not answer: when it is blocked in a system call, the
// kernel tells its stack pointer and the call's arguments (format
// "NR ARG1..ARG6 SP PC", or "-1 SP PC" when blocked outside a call).
void read_blocked_context(ThreadSnapshot* t) {
  char path[64] = "/proc/self/task/";
  size_t len = 16;
  char digits[12];
  unsigned nd = 0;
  for (uint32_t v = t->tid; nd == 0 || v != 0; v /= 10) digits[nd++] = char('0' + v % 10);
  while (nd != 0) path[len++] = digits[--nd];
  const char* tail = "/syscall";
  for (const char* s = tail; *s != 0; ++s) path[len++] = *s;
  path[len] = 0;
  int fd = int(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  if (fd < 0) return;
  char buf[256];
  long n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
  syscall(SYS_close, fd);
  if (n <= 0) return;
  buf[n] = 0;
  if (buf[0] < '0' && buf[0] != '-') return;
  if (buf[0] > '9') return;  // "running"
  uint64_t words[9];
  unsigned count = 0;
  const char* p = buf;
  if (*p == '-') {
    while (*p != ' ' && *p != 0) ++p;
    words[count++] = 0;
  } else {
    while (*p >= '0' && *p <= '9') ++p;  // the syscall number, decimal
    words[count++] = 0;
  }
  while (count < 9 && *p == ' ') words[count++] = parse_hex(&p);
  if (count == 9) {
    for (unsigned i = 1; i < 7; ++i) t->registers[t->register_count++] = uintptr_t(words[i]);
    t->sp = uintptr_t(words[7]);
  } else if (count == 3) {
    t->sp = uintptr_t(words[1]);
  }
}

int raw_open_read(const char* path) { return int(syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC)); }

}  // namespace

int stop_signal() { return SIGRTMAX - 5; }

bool static_tls_range(uintptr_t thread_pointer, uintptr_t* begin, uintptr_t* end) {
  size_t size = g_static_tls_size.load(std::memory_order_relaxed);
  size_t descriptor = g_thread_descriptor_size.load(std::memory_order_relaxed);
  if (thread_pointer == 0 || size == 0) return false;
#if defined(__x86_64__)
  // TLS_TCB_AT_TP: the thread pointer is the descriptor's address, the TLS
  // blocks end where it starts; the static size counts the descriptor.
  if (size <= descriptor || thread_pointer < size - descriptor) return false;
  *begin = thread_pointer + descriptor - size;
  *end = thread_pointer + descriptor;
#elif defined(__aarch64__)
  // TLS_DTV_AT_TP: the descriptor sits just below the thread pointer, the
  // 16-byte TCB and the TLS blocks above it.
  if (thread_pointer < descriptor) return false;
  *begin = thread_pointer - descriptor;
  *end = thread_pointer + size;
#else
  (void)descriptor;
  return false;
#endif
  return *end > *begin;
}

unsigned capture_registers(uintptr_t* out, unsigned max) {
  unsigned n = 0;
#if defined(__x86_64__)
  uintptr_t r[6];
  __asm__ volatile(
      "mov %%rbx, 0(%0)\n\t"
      "mov %%rbp, 8(%0)\n\t"
      "mov %%r12, 16(%0)\n\t"
      "mov %%r13, 24(%0)\n\t"
      "mov %%r14, 32(%0)\n\t"
      "mov %%r15, 40(%0)\n\t"
      :
      : "r"(r)
      : "memory");
  for (unsigned i = 0; i < 6 && n < max; ++i) out[n++] = r[i];
#elif defined(__aarch64__)
  uintptr_t r[12];
  __asm__ volatile(
      "stp x19, x20, [%0, #0]\n\t"
      "stp x21, x22, [%0, #16]\n\t"
      "stp x23, x24, [%0, #32]\n\t"
      "stp x25, x26, [%0, #48]\n\t"
      "stp x27, x28, [%0, #64]\n\t"
      "stp x29, x30, [%0, #80]\n\t"
      :
      : "r"(r)
      : "memory");
  for (unsigned i = 0; i < 12 && n < max; ++i) out[n++] = r[i];
#else
  (void)out;
  (void)max;
#endif
  return n;
}

bool stop_the_world(uintptr_t own_sp, const uintptr_t* own_registers, unsigned own_register_count,
                    StoppedWorld* out) {
  ScopedErrno keep;
  *out = StoppedWorld{};
  look_up_static_tls_info();  // before any thread is parked (loader lock)
  if (g_threads == nullptr) {
    g_threads = static_cast<ThreadSnapshot*>(Pal::map(sizeof(ThreadSnapshot) * kMaxStoppedThreads));
    if (g_threads == nullptr) return false;
    Pal::name_region(g_threads, sizeof(ThreadSnapshot) * kMaxStoppedThreads, "heapguard-stop-world");
  }
  ThreadSnapshot& self = g_threads[0];
  self = ThreadSnapshot{};
  self.tid = raw_gettid();
  self.stopped = true;
  self.sp = own_sp;
  self.thread_pointer = read_thread_pointer();
  for (unsigned i = 0; i < own_register_count && i < kMaxSavedRegisters; ++i) self.registers[i] = own_registers[i];
  self.register_count = own_register_count < kMaxSavedRegisters ? own_register_count : kMaxSavedRegisters;
  g_count.store(1, std::memory_order_release);
  g_answered.store(0, std::memory_order_release);

  struct sigaction action = {};
  action.sa_sigaction = stop_handler;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&action.sa_mask);  // nothing else runs on a parked thread's stack
  if (sigaction(stop_signal(), &action, &g_saved_action) != 0) return false;
  g_restore_action = true;
  g_epoch.fetch_add(1, std::memory_order_acq_rel);  // odd: stopping

  unsigned signalled = 0, overflow = 0;
  long deadline = monotonic_ms() + kAnswerTimeoutMs;
  for (unsigned round = 0; round < kMaxRounds; ++round) {
    unsigned more = signal_new_threads(&overflow);
    if (more == 0 && round != 0) break;
    signalled += more;
    // Threads created by a thread before it parked show up in the next
    // listing; threads that exited meanwhile never answer.
    for (;;) {
      uint32_t answered = g_answered.load(std::memory_order_acquire);
      if (answered >= signalled) break;
      long left = deadline - monotonic_ms();
      if (left <= 0) break;
      timespec ts = {0, (left > 10 ? 10 : left) * 1000000L};
      raw_futex(&g_answered, FUTEX_WAIT_PRIVATE, answered, &ts);
    }
    if (more == 0) break;
  }

  unsigned count = g_count.load(std::memory_order_acquire);
  unsigned not_stopped = 0;
  for (unsigned i = 1; i < count; ++i) {
    ThreadSnapshot& t = g_threads[i];
    if (t.tid == 0 || __atomic_load_n(&t.stopped, __ATOMIC_ACQUIRE)) continue;
    // Still present? An exited thread's entry is gone from /proc.
    char path[48] = "/proc/self/task/";
    size_t len = 16;
    char digits[12];
    unsigned nd = 0;
    for (uint32_t v = t.tid; nd == 0 || v != 0; v /= 10) digits[nd++] = char('0' + v % 10);
    while (nd != 0) path[len++] = digits[--nd];
    path[len] = 0;
    int fd = raw_open_read(path);
    if (fd < 0) {
      t.tid = 0;
      continue;
    }
    syscall(SYS_close, fd);
    ++not_stopped;
    read_blocked_context(&t);
  }
  out->threads = g_threads;
  out->count = count;
  out->not_stopped = not_stopped;
  out->overflow = overflow;
  return true;
}

void resume_the_world() {
  ScopedErrno keep;
  unsigned count = g_count.load(std::memory_order_acquire);
  bool all_answered = true;
  for (unsigned i = 1; i < count; ++i)
    if (g_threads[i].tid != 0 && !__atomic_load_n(&g_threads[i].stopped, __ATOMIC_ACQUIRE)) all_answered = false;
  g_epoch.fetch_add(1, std::memory_order_acq_rel);  // even: released
  raw_futex(&g_epoch, FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr);
  // A thread that never answered still has the signal pending; restoring
  // SIG_DFL would let it kill the process when it unblocks the signal, so
  // our handler (a no-op outside a stop) stays installed then.
  if (g_restore_action && all_answered) {
    sigaction(stop_signal(), &g_saved_action, nullptr);
    g_restore_action = false;
  }
}

namespace {
bool word_readable(uintptr_t p) {
  MappingReader maps;
  Mapping m;
  while (maps.next(&m))
    if (p >= m.begin && p + sizeof(uintptr_t) <= m.end) return m.readable;
  return false;
}
}  // namespace

bool thread_vector_range(uintptr_t thread_pointer, uintptr_t* begin, uintptr_t* end) {
  uintptr_t tls_begin, tls_end;
  if (!static_tls_range(thread_pointer, &tls_begin, &tls_end)) return false;
  // tcbhead_t: {tcb, dtv, self, ...} on x86-64, {dtv, private} on aarch64.
#if defined(__x86_64__)
  uintptr_t slot = thread_pointer + sizeof(uintptr_t);
#else
  uintptr_t slot = thread_pointer;
#endif
  if (!word_readable(slot)) return false;
  uintptr_t dtv = *reinterpret_cast<const uintptr_t*>(slot);
  // dtv_t is a 16-byte union; dtv[-1] counts the slots after dtv[0].
  constexpr uintptr_t kEntry = 2 * sizeof(uintptr_t);
  if (dtv < kEntry || dtv % sizeof(uintptr_t) != 0 || !word_readable(dtv - kEntry)) return false;
  uintptr_t length = *reinterpret_cast<const uintptr_t*>(dtv - kEntry);
  if (length == 0 || length > (uintptr_t{1} << 20)) return false;
  *begin = dtv - kEntry;
  *end = dtv + (length + 1) * kEntry;
  return true;
}

MappingReader::MappingReader() { fd_ = raw_open_read("/proc/self/maps"); }

MappingReader::~MappingReader() {
  if (fd_ >= 0) syscall(SYS_close, fd_);
}

bool MappingReader::fill() {
  if (pos_ != 0) {
    for (size_t i = pos_; i < len_; ++i) buf_[i - pos_] = buf_[i];
    len_ -= pos_;
    pos_ = 0;
  }
  if (len_ == sizeof(buf_)) return false;
  long n = syscall(SYS_read, fd_, buf_ + len_, sizeof(buf_) - len_);
  if (n <= 0) return false;
  len_ += size_t(n);
  return true;
}

bool MappingReader::next(Mapping* out) {
  if (fd_ < 0) return false;
  size_t eol = pos_;
  bool cut = false;
  for (;;) {
    while (eol < len_ && buf_[eol] != '\n') ++eol;
    if (eol < len_) break;
    size_t scanned = eol - pos_;
    if (!fill()) {
      if (len_ == pos_) return false;
      cut = len_ - pos_ == sizeof(buf_);  // a line longer than the buffer
      eol = len_;
      break;
    }
    eol = pos_ + scanned;
  }
  char* line = buf_ + pos_;
  size_t line_len = eol - pos_;
  pos_ = eol < len_ ? eol + 1 : len_;
  if (cut) {
    // Drop the rest of an overlong line; its start is parsed below, from a
    // copy, since refilling reuses the buffer.
    char head[129];
    size_t keep = line_len < sizeof(head) - 1 ? line_len : sizeof(head) - 1;
    for (size_t i = 0; i < keep; ++i) head[i] = line[i];
    head[keep] = 0;
    for (;;) {
      len_ = pos_ = 0;
      long n = syscall(SYS_read, fd_, buf_, sizeof(buf_));
      if (n <= 0) break;
      len_ = size_t(n);
      size_t i = 0;
      while (i < len_ && buf_[i] != '\n') ++i;
      if (i < len_) {
        pos_ = i + 1;
        break;
      }
    }
    return parse_line(head, keep, out);
  }
  return parse_line(line, line_len, out);
}

bool MappingReader::parse_line(const char* line, size_t line_len, Mapping* out) {
  const char* p = line;
  const char* end = line + line_len;
  *out = Mapping{};
  out->begin = uintptr_t(parse_hex(&p));
  if (p < end && *p == '-') ++p;
  out->end = uintptr_t(parse_hex(&p));
  while (p < end && *p == ' ') ++p;
  if (end - p >= 4) {
    out->readable = p[0] == 'r';
    out->writable = p[1] == 'w';
    out->executable = p[2] == 'x';
    out->shared = p[3] == 's';
    p += 4;
  }
  out->offset = parse_hex(&p);
  out->dev_major = uint32_t(parse_hex(&p));
  if (p < end && *p == ':') ++p;
  out->dev_minor = uint32_t(parse_hex(&p));
  while (p < end && *p == ' ') ++p;
  uint64_t inode = 0;
  while (p < end && *p >= '0' && *p <= '9') inode = inode * 10 + uint64_t(*p++ - '0');
  out->inode = inode;
  while (p < end && *p == ' ') ++p;
  if (p >= end) {
    out->kind = Mapping::Kind::Anonymous;
  } else if (*p == '[') {
    out->kind = Mapping::Kind::Named;
    auto starts = [&](const char* s) {
      const char* q = p;
      for (; *s != 0; ++s, ++q)
        if (q >= end || *q != *s) return false;
      return true;
    };
    out->is_stack = starts("[stack]");
    out->heapguard = starts("[anon:heapguard");
  } else {
    out->kind = inode != 0 ? Mapping::Kind::File : Mapping::Kind::Named;
  }
  return true;
}

bool elf_data_span(uintptr_t image_begin, size_t mapped_bytes, uintptr_t* begin, uintptr_t* end) {
  if (mapped_bytes < sizeof(Elf64_Ehdr)) return false;
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(image_begin);
  if (eh->e_ident[EI_MAG0] != ELFMAG0 || eh->e_ident[EI_MAG1] != ELFMAG1 || eh->e_ident[EI_MAG2] != ELFMAG2 ||
      eh->e_ident[EI_MAG3] != ELFMAG3 || eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr))
    return false;
  if (eh->e_phoff > mapped_bytes || eh->e_phnum > (mapped_bytes - eh->e_phoff) / sizeof(Elf64_Phdr)) return false;
  const auto* ph = reinterpret_cast<const Elf64_Phdr*>(image_begin + eh->e_phoff);
  // The offset-0 mapping is the first PT_LOAD (p_offset 0): the load bias
  // is where it landed minus its page-rounded p_vaddr.
  uintptr_t first_vaddr = UINTPTR_MAX;
  for (unsigned i = 0; i < eh->e_phnum; ++i)
    if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first_vaddr) first_vaddr = uintptr_t(ph[i].p_vaddr);
  if (first_vaddr == UINTPTR_MAX) return false;
  uintptr_t bias = image_begin - (first_vaddr & ~uintptr_t(Linux::page_size() - 1));
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (unsigned i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type != PT_LOAD || (ph[i].p_flags & PF_W) == 0) continue;
    uintptr_t b = bias + uintptr_t(ph[i].p_vaddr);
    uintptr_t e = b + uintptr_t(ph[i].p_memsz);
    if (b < lo) lo = b;
    if (e > hi) hi = e;
  }
  if (hi <= lo) return false;
  *begin = lo;
  *end = hi;
  return true;
}

uintptr_t dynamic_loader_base() { return uintptr_t(getauxval(AT_BASE)); }

bool main_executable_identity(uint64_t* inode, uint32_t* dev_major, uint32_t* dev_minor) {
  struct stat st;
  if (stat("/proc/self/exe", &st) != 0) return false;
  *inode = uint64_t(st.st_ino);
  *dev_major = uint32_t(major(st.st_dev));
  *dev_minor = uint32_t(minor(st.st_dev));
  return true;
}

}  // namespace heapguard::pal
