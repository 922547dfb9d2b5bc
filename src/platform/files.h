// SPDX-License-Identifier: Apache-2.0
// File access for the report path (platform layer): open, read, map and close
// files, read /proc/self/maps, and open the report log safely. Everything is
// a raw syscall into caller or stack buffers: no malloc, no stdio, no locks,
// so it works from a signal handler and with a corrupt heap. errno is
// preserved by every call (ScopedErrno), like the rest of heapguard::pal.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::pal {

// O_RDONLY|O_CLOEXEC; retried on EINTR. -1 on failure.
int open_read_only(const char* path);
// One read(2), retried on EINTR: bytes read, 0 at end of file, -1 on error.
long read_some(int fd, void* buf, size_t n);
// pread(2) until n bytes or end of file: bytes read, -1 on error.
long read_at(int fd, void* buf, size_t n, uint64_t offset);
void close_fd(int fd);

struct FileId {
  uint64_t size = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
};
// fstat: size and identity (to tell a replaced file from the one mapped).
bool file_id(int fd, FileId* out);

// Maps n bytes of fd from offset 0 read-only and private. nullptr on failure.
// The mapping outlives the fd (close it right after).
const void* map_file_read_only(int fd, size_t n);
void unmap_file(const void* p, size_t n);

// The report log: opened O_WRONLY|O_CREAT|O_APPEND|O_NOFOLLOW|O_CLOEXEC, mode
// 0600, and refused (closed, -1) unless it is a regular file owned by the
// effective uid. This stops a planted symlink or a file of another user (a
// shared /tmp) from receiving heap addresses or being clobbered.
int open_log_file(const char* path);

// One line of /proc/self/maps.
struct MemoryMapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  uint64_t offset = 0;  // file offset of start
  uint64_t inode = 0;   // 0: anonymous
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  // Path or pseudo-name ("[vdso]", "[heap]"); "" for anonymous memory.
  // Points into the reader's buffer: valid until the next call to next().
  const char* path = "";
};

// Reads /proc/self/maps line by line through one fixed buffer (held by the
// object, so put it where there is room: about 2 KiB). Lines longer than the
// buffer (paths beyond ~1900 bytes) are skipped. The kernel produces the file
// in page-sized chunks, so a mapping changed while reading may be seen twice
// or missed: callers treat the result as a hint, never as a proof.
class MapsReader {
 public:
  static constexpr size_t kBufferSize = 2048;

  MapsReader() = default;
  ~MapsReader();
  MapsReader(const MapsReader&) = delete;
  MapsReader& operator=(const MapsReader&) = delete;

  // Opens /proc/self/maps; false when it cannot be read (no /proc).
  bool open();
  // The next mapping; false at the end (or on a read error).
  bool next(MemoryMapping* out);
  // Raw form: the next line without its newline, NUL-terminated in the
  // reader's buffer. nullptr at the end.
  const char* next_line();
  void close();

 private:
  bool fill();

  int fd_ = -1;
  size_t begin_ = 0;  // first unread byte of buf_
  size_t end_ = 0;    // one past the last valid byte of buf_
  bool eof_ = false;
  char buf_[kBufferSize];
};

}  // namespace heapguard::pal
