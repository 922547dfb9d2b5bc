// SPDX-License-Identifier: Apache-2.0
// File access for the report path (see files.h). Direct syscall(2) rather
// than the libc wrappers: those are pthread cancellation points and may be
// interposed by the program or by other preloaded tools, and the report path
// must neither be cancelled halfway nor re-enter foreign code.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "platform/platform.h"

namespace heapguard::pal {

namespace {

long sys_open(const char* path, int flags, int mode) {
  long fd;
  do {
    fd = syscall(SYS_openat, AT_FDCWD, path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Parses lowercase/uppercase hex digits at *p, advancing it.
uint64_t parse_hex(const char** p) {
  uint64_t v = 0;
  for (;;) {
    char c = **p;
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return v;
    }
    v = (v << 4) | d;
    ++*p;
  }
}

uint64_t parse_dec(const char** p) {
  uint64_t v = 0;
  while (**p >= '0' && **p <= '9') {
    v = v * 10 + static_cast<uint64_t>(**p - '0');
    ++*p;
  }
  return v;
}

bool expect(const char** p, char c) {
  if (**p != c) return false;
  ++*p;
  return true;
}

void skip_spaces(const char** p) {
  while (**p == ' ' || **p == '\t') ++*p;
}

// "start-end perms offset major:minor inode   path"
bool parse_maps_line(const char* line, MemoryMapping* out) {
  const char* p = line;
  out->start = static_cast<uintptr_t>(parse_hex(&p));
  if (!expect(&p, '-')) return false;
  out->end = static_cast<uintptr_t>(parse_hex(&p));
  if (!expect(&p, ' ')) return false;
  if (p[0] == '\0' || p[1] == '\0' || p[2] == '\0' || p[3] == '\0') return false;
  out->readable = p[0] == 'r';
  out->writable = p[1] == 'w';
  out->executable = p[2] == 'x';
  p += 4;
  if (!expect(&p, ' ')) return false;
  out->offset = parse_hex(&p);
  if (!expect(&p, ' ')) return false;
  out->dev_major = static_cast<uint32_t>(parse_hex(&p));
  if (!expect(&p, ':')) return false;
  out->dev_minor = static_cast<uint32_t>(parse_hex(&p));
  if (!expect(&p, ' ')) return false;
  out->inode = parse_dec(&p);
  skip_spaces(&p);
  out->path = p;
  return out->end > out->start;
}

}  // namespace

int open_read_only(const char* path) {
  ScopedErrno keep;
  return static_cast<int>(sys_open(path, O_RDONLY | O_CLOEXEC, 0));
}

long read_some(int fd, void* buf, size_t n) {
  ScopedErrno keep;
  long r;
  do {
    r = syscall(SYS_read, fd, buf, n);
  } while (r < 0 && errno == EINTR);
  return r;
}

long read_at(int fd, void* buf, size_t n, uint64_t offset) {
  ScopedErrno keep;
  size_t done = 0;
  while (done < n) {
    long r = syscall(SYS_pread64, fd, static_cast<char*>(buf) + done, n - done,
                     static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<long>(done);
}

void close_fd(int fd) {
  ScopedErrno keep;
  // Never retried: on Linux the descriptor is released even on EINTR.
  if (fd >= 0) syscall(SYS_close, fd);
}

bool file_id(int fd, FileId* out) {
  ScopedErrno keep;
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  out->size = static_cast<uint64_t>(st.st_size);
  out->inode = static_cast<uint64_t>(st.st_ino);
  out->device = static_cast<uint64_t>(st.st_dev);
  return true;
}

const void* map_file_read_only(int fd, size_t n) {
  ScopedErrno keep;
  if (n == 0) return nullptr;
  void* p = mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void unmap_file(const void* p, size_t n) {
  ScopedErrno keep;
  if (p != nullptr) munmap(const_cast<void*>(p), n);
}

int open_log_file(const char* path) {
  ScopedErrno keep;
  // O_NONBLOCK: a FIFO planted at the path (pids are predictable) must not
  // block the report before the checks below refuse it.
  long fd = sys_open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  if (fd < 0) return -1;
  struct stat st;
  // Checked on the open descriptor, not the path: no window for a swap. A
  // second hard link would let a planted name append to another file of
  // this user's.
  if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
    syscall(SYS_close, fd);
    return -1;
  }
  // Back to blocking writes: a full disk or pipe must not truncate a report.
  long flags = syscall(SYS_fcntl, fd, F_GETFL);
  if (flags >= 0) syscall(SYS_fcntl, fd, F_SETFL, flags & ~long(O_NONBLOCK));
  return static_cast<int>(fd);
}

MapsReader::~MapsReader() { close(); }

bool MapsReader::open() {
  close();
  fd_ = open_read_only("/proc/self/maps");
  begin_ = end_ = 0;
  eof_ = false;
  return fd_ >= 0;
}

void MapsReader::close() {
  if (fd_ >= 0) close_fd(fd_);
  fd_ = -1;
}

// Moves the unread tail to the front and reads more; false when nothing new.
bool MapsReader::fill() {
  if (eof_ || fd_ < 0) return false;
  if (begin_ > 0) {
    memmove(buf_, buf_ + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // One byte kept for the terminating NUL of a final unterminated line.
  if (end_ >= kBufferSize - 1) return false;
  long r = read_some(fd_, buf_ + end_, kBufferSize - 1 - end_);
  if (r <= 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(r);
  return true;
}

const char* MapsReader::next_line() {
  bool skipping = false;  // inside a line too long for the buffer
  for (;;) {
    char* nl = static_cast<char*>(memchr(buf_ + begin_, '\n', end_ - begin_));
    if (nl != nullptr) {
      char* line = buf_ + begin_;
      *nl = '\0';
      begin_ = static_cast<size_t>(nl - buf_) + 1;
      if (skipping) {
        skipping = false;
        continue;
      }
      return line;
    }
    if (!fill()) {
      if (end_ - begin_ == kBufferSize - 1) {
        // Full buffer and no newline: drop it and skip to the next line.
        begin_ = end_ = 0;
        skipping = true;
        if (fill()) continue;
      }
      if (end_ > begin_ && !skipping) {
        // Last line without a newline.
        char* line = buf_ + begin_;
        buf_[end_] = '\0';
        begin_ = end_;
        return line;
      }
      return nullptr;
    }
  }
}

bool MapsReader::next(MemoryMapping* out) {
  for (;;) {
    const char* line = next_line();
    if (line == nullptr) return false;
    if (parse_maps_line(line, out)) return true;
  }
}

}  // namespace heapguard::pal
