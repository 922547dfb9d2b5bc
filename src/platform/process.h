// SPDX-License-Identifier: Apache-2.0
// Helper processes for the report path (platform layer): start a program
// with its stdin and stdout connected to us, talk to it under a deadline,
// and reap or kill it. No fork(): fork runs the pthread_atfork handlers, and
// heapguard's take the allocator locks, so a report raised while one of them
// is held would deadlock. No malloc either (posix_spawn's file actions
// allocate): the child is a clone(CLONE_VM|CLONE_VFORK) on a stack from
// mmap that only dup2s and execve()s with the caller's arrays.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapguard::pal {

struct ChildProcess {
  int pid = -1;
  int stdin_fd = -1;   // we write the child's stdin here (close for EOF)
  int stdout_fd = -1;  // we read the child's stdout here
};

// Starts `path` (absolute, not searched) with argv and envp, both
// nullptr-terminated and kept alive by the caller until this returns. The
// child's stderr goes to /dev/null, and it inherits no other descriptor of
// ours (everything we open is O_CLOEXEC). Its stdin and stdout are
// AF_UNIX socket pairs rather than pipes, so that a write to a child that
// died is EPIPE (MSG_NOSIGNAL) instead of a SIGPIPE killing the program.
// Signals are blocked around the clone and reset to SIG_DFL in the child
// before execve, so no handler of the program runs on the shared memory.
// False (nothing left open, no child) when the program cannot be started.
bool spawn_piped(const char* path, const char* const* argv, const char* const* envp,
                 ChildProcess* out);

// CLOCK_MONOTONIC in nanoseconds: the clock deadlines below use.
uint64_t monotonic_ns();

// Writes all of buf to fd (a ChildProcess::stdin_fd) unless the deadline
// passes first. False on timeout or error (the child closed its end).
bool write_with_deadline(int fd, const void* buf, size_t n, uint64_t deadline_ns);
// Waits for data on fd until the deadline: bytes read, 0 at end of file,
// -1 on timeout or error.
long read_with_deadline(int fd, void* buf, size_t n, uint64_t deadline_ns);

// Closes our ends and waits for the child until the deadline, then kills it
// (SIGKILL) and reaps it. Returns its exit status as waitpid reports it, or
// -1 when it had to be killed or was reaped by someone else (a SIGCHLD
// handler of the program calling wait).
int finish_child(ChildProcess* child, uint64_t deadline_ns);

// X_OK test, errno preserved.
bool is_executable(const char* path);
// Looks name up in the PATH of the environment (walked without getenv) and
// writes the first executable match into out. False when PATH is unset or
// empty or nothing matches; never uses a default path.
bool find_in_path(const char* name, char* out, size_t cap);

}  // namespace heapguard::pal
