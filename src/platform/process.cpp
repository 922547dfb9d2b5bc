// SPDX-License-Identifier: Apache-2.0
// Helper processes without fork() or malloc (see process.h). The child shares
// our memory until execve (CLONE_VM|CLONE_VFORK, as glibc's posix_spawn
// does), so it runs only async-signal-safe code on its own mmap'd stack and
// reports an execve failure through that shared memory.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "platform/platform.h"

namespace heapguard::pal {

namespace {

constexpr size_t kChildStackSize = 64 * 1024;

struct SpawnArgs {
  const char* path;
  const char* const* argv;
  const char* const* envp;
  int stdin_fd;   // child's ends, all > 2
  int stdout_fd;
  int stderr_fd;
  sigset_t parent_mask;
  // Written by the child before it exits when execve fails; the parent reads
  // it after clone returns (CLONE_VFORK: the child has exec'd or exited).
  int exec_errno;
};

int child_main(void* raw) {
  auto* a = static_cast<SpawnArgs*>(raw);
  // Handlers of the program would run on memory shared with the parent
  // between the unblocking below and execve: reset them first. Our handler
  // table is a copy (no CLONE_SIGHAND), so the parent keeps its own.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa;
    if (sigaction(sig, nullptr, &sa) != 0) continue;  // glibc-internal signals
    if (sa.sa_handler == SIG_IGN || sa.sa_handler == SIG_DFL) continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, nullptr);
  }
  // The program's mask, not the all-blocked one of the clone window: a
  // child started with SIGTERM blocked could not be stopped.
  sigprocmask(SIG_SETMASK, &a->parent_mask, nullptr);
  // dup2 clears close-on-exec on the new descriptors; everything else of
  // ours is close-on-exec and disappears at execve.
  if (dup2(a->stdin_fd, 0) < 0 || dup2(a->stdout_fd, 1) < 0 || dup2(a->stderr_fd, 2) < 0) {
    a->exec_errno = errno != 0 ? errno : EBADF;
    syscall(SYS_exit, 127);
  }
  syscall(SYS_execve, a->path, a->argv, a->envp);
  a->exec_errno = errno != 0 ? errno : ENOEXEC;
  // SYS_exit, not exit(): no atexit handlers, no stdio flush of the
  // parent's buffers, which this process shares.
  syscall(SYS_exit, 127);
  return 127;
}

// Keeps fd off 0..2 so that the child's dup2 onto 0..2 cannot clobber
// another of the descriptors it still needs (a program that closed stdin
// gets fd 0 from the next socketpair).
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

void close_if_open(int fd) {
  if (fd >= 0) close(fd);
}

int remaining_ms(uint64_t deadline_ns) {
  uint64_t now = monotonic_ns();
  if (now >= deadline_ns) return 0;
  uint64_t ms = (deadline_ns - now + 999999) / 1000000;
  return ms > 1000000 ? 1000000 : static_cast<int>(ms);
}

// poll for one fd; true when ready, false on timeout or error.
bool wait_fd(int fd, short events, uint64_t deadline_ns) {
  for (;;) {
    struct pollfd p = {fd, events, 0};
    int timeout = remaining_ms(deadline_ns);
    int r = poll(&p, 1, timeout);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

uint64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

bool spawn_piped(const char* path, const char* const* argv, const char* const* envp,
                 ChildProcess* out) {
  ScopedErrno keep;
  *out = ChildProcess{};
  int in_pair[2] = {-1, -1};
  int out_pair[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) return false;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out_pair) != 0) {
    close(in_pair[0]);
    close(in_pair[1]);
    return false;
  }
  int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  for (int* fd : {&in_pair[0], &in_pair[1], &out_pair[0], &out_pair[1], &null_fd}) {
    *fd = above_stdio(*fd);
  }
  auto cleanup = [&] {
    for (int fd : {in_pair[0], in_pair[1], out_pair[0], out_pair[1], null_fd}) close_if_open(fd);
  };
  if (in_pair[0] < 0 || in_pair[1] < 0 || out_pair[0] < 0 || out_pair[1] < 0 || null_fd < 0) {
    cleanup();
    return false;
  }
  // One-way: the child only reads stdin and only writes stdout.
  shutdown(in_pair[1], SHUT_WR);
  shutdown(out_pair[1], SHUT_RD);

  void* stack = Pal::map(kChildStackSize);
  if (stack == nullptr) {
    cleanup();
    return false;
  }
  SpawnArgs args;
  args.path = path;
  args.argv = argv;
  args.envp = envp;
  args.stdin_fd = in_pair[1];
  args.stdout_fd = out_pair[1];
  args.stderr_fd = null_fd;
  args.exec_errno = 0;

  // All signals blocked across clone: until the child has reset the
  // handlers, a signal delivered to it would run a program handler on our
  // stack-sharing, memory-sharing child.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &args.parent_mask);
  // Stacks grow down on every Linux target heapguard builds for.
  char* top = static_cast<char*>(stack) + kChildStackSize;
  int pid = clone(child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  pthread_sigmask(SIG_SETMASK, &args.parent_mask, nullptr);
  // CLONE_VFORK: we run again only once the child has exec'd or exited,
  // so its stack is free.
  Pal::unmap(stack, kChildStackSize);

  close(in_pair[1]);
  close(out_pair[1]);
  close(null_fd);
  if (pid <= 0 || args.exec_errno != 0) {
    if (pid > 0) {
      int status;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    close(in_pair[0]);
    close(out_pair[0]);
    return false;
  }
  out->pid = pid;
  out->stdin_fd = in_pair[0];
  out->stdout_fd = out_pair[0];
  return true;
}

bool write_with_deadline(int fd, const void* buf, size_t n, uint64_t deadline_ns) {
  ScopedErrno keep;
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    if (!wait_fd(fd, POLLOUT, deadline_ns)) return false;
    // MSG_NOSIGNAL: a child that exited makes this EPIPE, not SIGPIPE.
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == ENOTSOCK) w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

long read_with_deadline(int fd, void* buf, size_t n, uint64_t deadline_ns) {
  ScopedErrno keep;
  for (;;) {
    if (!wait_fd(fd, POLLIN, deadline_ns)) return -1;
    ssize_t r = read(fd, buf, n);
    if (r >= 0) return static_cast<long>(r);
    if (errno != EINTR && errno != EAGAIN) return -1;
  }
}

int finish_child(ChildProcess* child, uint64_t deadline_ns) {
  ScopedErrno keep;
  close_if_open(child->stdin_fd);
  close_if_open(child->stdout_fd);
  child->stdin_fd = child->stdout_fd = -1;
  int pid = child->pid;
  child->pid = -1;
  if (pid <= 0) return -1;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;  // ECHILD: reaped elsewhere
    if (monotonic_ns() >= deadline_ns) break;
    struct timespec nap = {0, 1000000};  // 1 ms
    nanosleep(&nap, nullptr);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return -1;
}

bool is_executable(const char* path) {
  ScopedErrno keep;
  // access() says yes to directories too.
  struct stat st;
  return access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool find_in_path(const char* name, char* out, size_t cap) {
  const char* path = Pal::env_lookup("PATH");
  if (path == nullptr || name == nullptr || name[0] == '\0') return false;
  size_t name_len = strlen(name);
  const char* dir = path;
  for (;;) {
    const char* colon = strchr(dir, ':');
    size_t dir_len = colon != nullptr ? static_cast<size_t>(colon - dir) : strlen(dir);
    // Only absolute entries: an empty or relative one means the current
    // directory, and a crashing process must not run whatever lies there.
    if (dir_len > 0 && dir[0] == '/' && dir_len + 1 + name_len + 1 <= cap) {
      memcpy(out, dir, dir_len);
      out[dir_len] = '/';
      memcpy(out + dir_len + 1, name, name_len + 1);
      if (is_executable(out)) return true;
    }
    if (colon == nullptr) break;
    dir = colon + 1;
  }
  if (cap > 0) out[0] = '\0';
  return false;
}

}  // namespace heapguard::pal
