// SPDX-License-Identifier: Apache-2.0
// The reporter: each report is rendered in a forked child into a log file
// (log_path with %p), then read back line by line (text) or parsed by
// python3's json module (JSON). Also: the JSON writer's escaping, log_path
// expansion and the symlink refusal, suppression parsing and matching,
// recoverable against fatal errors, re-entry, concurrent reports, leaks.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "report/report.h"

// Named frames for the stacks the tests hand to the reporter: C linkage so
// that their names do not depend on the symbolizer demangling.
extern "C" {
__attribute__((noinline)) int hg_test_fault_site(int x) { return x * 3 + 1; }
__attribute__((noinline)) int hg_test_caller(int x) { return hg_test_fault_site(x) + 2; }
__attribute__((noinline)) int hg_test_allocator_site(int x) { return x * 5 + 3; }
__attribute__((noinline)) int hg_test_free_site(int x) { return x * 7 + 5; }
__attribute__((noinline)) int hg_test_third_party(int x) { return x * 11 + 7; }
}

namespace heapguard::test {
namespace {

// An address inside fn's body (a return address into it, as a captured
// frame would hold).
uintptr_t inside(int (*fn)(int)) { return reinterpret_cast<uintptr_t>(fn) + 4; }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

bool starts(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hg_report_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ChildResult {
  int pid = 0;
  int status = 0;
  std::string log;  // the child's log file (log.<pid>)
};

// Runs body in a forked child whose reports go to DIR/log.<pid> with the
// given settings; the child exits 0 if body returns.
ChildResult run_child(const TempDir& dir, const ReportSettings& settings, const std::function<void()>& body) {
  std::string pattern = dir.path() + "/log.%p";
  pid_t pid = fork();
  if (pid == 0) {
    set_log_path_for_testing(pattern.c_str());
    set_report_settings_for_testing(&settings);
    body();
    _exit(0);
  }
  ChildResult r;
  r.pid = pid;
  waitpid(pid, &r.status, 0);
  r.log = read_file(dir.path() + "/log." + std::to_string(pid));
  return r;
}

ReportSettings exit_settings(int code = 7) {
  ReportSettings s;
  s.halt_on_error = true;
  s.abort_on_error = false;
  s.exitcode = code;
  return s;
}

uint32_t thread_three() { return 3; }

// A heap-buffer-overflow with everything: access, region, detail, and
// allocation and free stacks.
void report_full(bool recoverable = false) {
  uintptr_t current[3];
  current[0] = inside(hg_test_fault_site);
  current[1] = inside(hg_test_caller);
  current[2] = inside(hg_test_caller) + 8;
  uintptr_t alloc[2] = {inside(hg_test_allocator_site), inside(hg_test_caller)};
  uintptr_t freed[1] = {inside(hg_test_free_site)};
  MessageBuilder detail;
  detail.str("the overwrite was found when the block was passed to free()");
  ReportInfo info{};
  info.kind = ErrorKind::HeapBufferOverflow;
  info.address = 0x1018;
  info.current = current;
  info.current_n = 3;
  info.access = "WRITE of size 1";
  info.region_start = 0x1000;
  info.region_size = 24;
  info.relation = Relation::Right;
  info.detail = &detail;
  info.allocated = TraceRef{g_stack_depot.put(alloc, 2), 0};
  info.freed = TraceRef{g_stack_depot.put(freed, 1), 1};
  info.recoverable = recoverable;
  set_thread_number_source(&thread_three);
  report_error(info);
}

std::string hex(uintptr_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(v));
  return buf;
}

// ---------------------------------------------------------------- JSON

std::string render(const std::function<void(ReportBuffer&)>& fn) {
  char tmpl[] = "/tmp/hg_json_XXXXXX";
  int fd = mkstemp(tmpl);
  {
    ReportBuffer out(fd);
    fn(out);
    out.flush();
  }
  close(fd);
  std::string s = read_file(tmpl);
  unlink(tmpl);
  return s;
}

TEST(JsonWriter, WritesNestedValuesWithCommas) {
  std::string s = render([](ReportBuffer& out) {
    JsonWriter w(out);
    w.begin_object().key("a").number(1).key("b").begin_array().number(2).null().boolean(true).end_array();
    w.key("c").hex_string(255).key("d").string(nullptr).key("e").begin_object().end_object().end_object();
  });
  EXPECT_EQ(s, R"({"a":1,"b":[2,null,true],"c":"0xff","d":null,"e":{}})");
}

TEST(JsonWriter, EscapesQuotesControlBytesAndBrokenUtf8) {
  std::string s = render([](ReportBuffer& out) {
    const char text[] = "q\"b\\n\n\t\x01\x7f caf\xc3\xa9 \xff\xc3 \xed\xa0\x80";
    JsonWriter::escape(out, text, sizeof text - 1);
  });
  EXPECT_EQ(s, "q\\\"b\\\\n\\n\\t\\u0001\\u007f caf\xc3\xa9 \\u00ff\\u00c3 \\u00ed\\u00a0\\u0080");
}

TEST(ReportBuffer, FlushesLongTextInPieces) {
  std::string big(3 * ReportBuffer::kCapacity + 17, 'x');
  std::string s = render([&](ReportBuffer& out) { out.str(big.c_str()).dec(42); });
  EXPECT_EQ(s, big + "42");
}

// ---------------------------------------------------------------- log_path

TEST(LogPath, ExpandsPidOrAppendsIt) {
  char out[64];
  EXPECT_EQ(format_log_path("/tmp/r.%p.log", 4711, out, sizeof out), strlen("/tmp/r.4711.log"));
  EXPECT_STREQ(out, "/tmp/r.4711.log");
  format_log_path("/tmp/report", 42, out, sizeof out);
  EXPECT_STREQ(out, "/tmp/report.42");
  format_log_path("%p/%p", 7, out, sizeof out);
  EXPECT_STREQ(out, "7/7");
  EXPECT_EQ(format_log_path("", 7, out, sizeof out), 0u);
  EXPECT_EQ(format_log_path("/a/very/long/name", 123456, out, 12), 0u);
}

TEST(LogPath, RefusesASymlinkAndCreatesPrivateFiles) {
  TempDir dir;
  std::string target = dir.path() + "/victim";
  { std::ofstream(target) << "keep\n"; }
  std::string link = dir.path() + "/log." + std::to_string(getpid());
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_EQ(open_report_log((dir.path() + "/log.%p").c_str()), -1);
  EXPECT_EQ(read_file(target), "keep\n");

  int fd = open_report_log((dir.path() + "/fresh").c_str());
  ASSERT_GE(fd, 0);
  close(fd);
  struct stat st;
  ASSERT_EQ(stat((dir.path() + "/fresh." + std::to_string(getpid())).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(LogPath, ReportsGoToStderrWhenTheLogCannotBeOpened) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    std::string missing = dir.path() + "/no/such/dir/log";
    set_log_path_for_testing(missing.c_str());
    ReportSettings s = exit_settings(9);
    set_report_settings_for_testing(&s);
    report_full();
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) err.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 9);
  auto lines = lines_of(err);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_NE(lines[0].find("HeapGuard: cannot open log_path file"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("ERROR: HeapGuard: heap-buffer-overflow"), std::string::npos) << lines[1];
}

// ---------------------------------------------------------------- suppressions

TEST(Suppressions, WildcardsMatchWholeNames) {
  EXPECT_TRUE(wildcard_match("foo", "foo"));
  EXPECT_FALSE(wildcard_match("foo", "foobar"));
  EXPECT_TRUE(wildcard_match("foo*", "foobar"));
  EXPECT_TRUE(wildcard_match("*bar", "foobar"));
  EXPECT_TRUE(wildcard_match("*o*a*", "foobar"));
  EXPECT_TRUE(wildcard_match("*", ""));
  EXPECT_FALSE(wildcard_match("a*c", "abcd"));
  EXPECT_TRUE(wildcard_match("a**c", "abbbc"));
}

TEST(Suppressions, ParsesClassesCommentsAndRejectsMalformedLines) {
  const char text[] =
      "# known bugs\n"
      "heap-buffer-overflow:hg_test_third_party\n"
      "  * : libfoo.so  \n"
      "\n"
      "memory-leak:*leaky*\n"
      "no colon here\n"
      "not-a-class:foo\n"
      "double-free:\n";
  testing::internal::CaptureStderr();
  EXPECT_EQ(parse_suppressions(text, sizeof text - 1, "supp.txt"), 3u);
  std::string err = testing::internal::GetCapturedStderr();
  auto lines = lines_of(err);
  ASSERT_EQ(lines.size(), 3u) << err;
  EXPECT_NE(lines[0].find("suppressions supp.txt:6:"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("suppressions supp.txt:7: unknown error class 'not-a-class'"), std::string::npos);
  EXPECT_NE(lines[2].find("supp.txt:8:"), std::string::npos);
  parse_suppressions("", 0, "none");
}

TEST(Suppressions, MatchFunctionsAndModulesOfTheStack) {
  const char text[] = "heap-buffer-overflow:hg_test_third_party\ndouble-free:unit_report\n";
  parse_suppressions(text, sizeof text - 1, "supp");
  uintptr_t stack[2] = {inside(hg_test_fault_site), inside(hg_test_third_party)};
  EXPECT_TRUE(is_suppressed(ErrorKind::HeapBufferOverflow, stack, 2));
  EXPECT_FALSE(is_suppressed(ErrorKind::HeapBufferOverflow, stack, 1));
  EXPECT_FALSE(is_suppressed(ErrorKind::InvalidFree, stack, 2));
  // The module's basename (this test executable).
  EXPECT_TRUE(is_suppressed(ErrorKind::DoubleFree, stack, 1));
  parse_suppressions("", 0, "none");
  EXPECT_FALSE(is_suppressed(ErrorKind::HeapBufferOverflow, stack, 2));
}

// ---------------------------------------------------------------- text reports

TEST(TextReport, HasEveryLineOfTheContract) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(7), [] { report_full(); });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 7);
  auto lines = lines_of(r.log);
  ASSERT_EQ(lines.size(), 13u) << r.log;
  std::string prefix = "==" + std::to_string(r.pid) + "==";
  std::string fault = hex(inside(hg_test_fault_site));
  EXPECT_EQ(lines[0], prefix + "ERROR: HeapGuard: heap-buffer-overflow on address 0x1018 at pc " + fault + " thread T3");
  EXPECT_EQ(lines[1], "WRITE of size 1 at 0x1018 thread T3");
  EXPECT_TRUE(starts(lines[2], "    #0 " + fault + " in hg_test_fault_site (")) << lines[2];
  EXPECT_NE(lines[2].find("unit_report+0x"), std::string::npos) << lines[2];
  EXPECT_TRUE(starts(lines[3], "    #1 " + hex(inside(hg_test_caller)) + " in hg_test_caller (")) << lines[3];
  EXPECT_TRUE(starts(lines[4], "    #2 ")) << lines[4];
  EXPECT_EQ(lines[5], "0x1018 is located 0 bytes to the right of 24-byte region [0x1000,0x1018)");
  EXPECT_EQ(lines[6], "the overwrite was found when the block was passed to free()");
  EXPECT_EQ(lines[7], "allocated by thread T0 here:");
  EXPECT_TRUE(starts(lines[8], "    #0 " + hex(inside(hg_test_allocator_site)) + " in hg_test_allocator_site (")) << lines[8];
  EXPECT_TRUE(starts(lines[9], "    #1 ")) << lines[9];
  EXPECT_EQ(lines[10], "freed by thread T1 here:");
  EXPECT_TRUE(starts(lines[11], "    #0 " + hex(inside(hg_test_free_site)) + " in hg_test_free_site (")) << lines[11];
  EXPECT_TRUE(starts(lines[12], "SUMMARY: HeapGuard: heap-buffer-overflow in hg_test_fault_site (")) << lines[12];
  EXPECT_NE(lines[12].find("unit_report+0x"), std::string::npos);
}

TEST(TextReport, OmitsWhatIsNotKnownAndDerivesTheRelation) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(3), [] {
    uintptr_t current[1] = {inside(hg_test_caller)};
    ReportInfo info{};
    info.kind = ErrorKind::InvalidFree;
    info.address = 0x2004;
    info.current = current;
    info.current_n = 1;
    info.region_start = 0x2008;
    info.region_size = 16;
    info.thread = 5;
    report_error(info);
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 3);
  auto lines = lines_of(r.log);
  ASSERT_EQ(lines.size(), 4u) << r.log;
  EXPECT_NE(lines[0].find("ERROR: HeapGuard: invalid-free on address 0x2004 at pc "), std::string::npos);
  EXPECT_NE(lines[0].find(" thread T5"), std::string::npos);
  EXPECT_EQ(lines[2], "0x2004 is located 4 bytes to the left of 16-byte region [0x2008,0x2018)");
  EXPECT_TRUE(starts(lines[3], "SUMMARY: HeapGuard: invalid-free in hg_test_caller (")) << lines[3];
}

TEST(TextReport, SummarySkipsHeapguardsApiEntry) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(3), [] {
    // Frame #0 in heapguard's free(), as a stack captured inside free().
    uintptr_t current[2] = {reinterpret_cast<uintptr_t>(&::free) + 4, inside(hg_test_caller)};
    ReportInfo info{};
    info.kind = ErrorKind::DoubleFree;
    info.address = 0x3000;
    info.current = current;
    info.current_n = 2;
    report_error(info);
  });
  auto lines = lines_of(r.log);
  ASSERT_EQ(lines.size(), 4u) << r.log;
  EXPECT_NE(lines[1].find(" in free ("), std::string::npos) << lines[1];
  EXPECT_TRUE(starts(lines[3], "SUMMARY: HeapGuard: double-free in hg_test_caller (")) << lines[3];
}

TEST(TextReport, CapturesTheCurrentStackWhenNoneIsGiven) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(4), [] {
    ReportInfo info{};
    info.kind = ErrorKind::DoubleFree;
    info.address = 0x4000;
    report_error(info);
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 4);
  auto lines = lines_of(r.log);
  ASSERT_GE(lines.size(), 3u) << r.log;
  EXPECT_TRUE(starts(lines[1], "    #0 0x")) << lines[1];
  EXPECT_TRUE(starts(lines.back(), "SUMMARY: HeapGuard: double-free in ")) << lines.back();
}

// ---------------------------------------------------------------- JSON reports

// Checks the child's JSON log with python3; `checks` is Python run with
// `r` = the first object, `lines` = all objects.
void check_json(const std::string& log_path, const std::string& checks) {
  std::string script = log_path + ".py";
  {
    std::ofstream py(script);
    py << "import json, sys\n"
       << "lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]\n"
       << "r = lines[0]\n"
       << checks << "\n";
  }
  std::string cmd = "python3 " + script + " " + log_path;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << read_file(log_path);
}

TEST(JsonReport, ParsesBackFieldByField) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.json = true;
  ChildResult r = run_child(dir, s, [] { report_full(); });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 7);
  EXPECT_EQ(std::count(r.log.begin(), r.log.end(), '\n'), 1) << r.log;
  std::string log = dir.path() + "/log." + std::to_string(r.pid);
  check_json(log,
             "assert r['heapguard'] == 1 and r['pid'] == " + std::to_string(r.pid) + "\n"
             "assert r['class'] == 'heap-buffer-overflow'\n"
             "assert r['address'] == '0x1018' and r['pc'] == '" + hex(inside(hg_test_fault_site)) + "'\n"
             "assert r['thread'] == 3 and r['access'] == 'WRITE of size 1'\n"
             "assert r['region'] == {'start': '0x1000', 'size': 24, 'relation': 'right', 'offset': 0}\n"
             "assert r['detail'] == 'the overwrite was found when the block was passed to free()'\n"
             "c = r['stacks']['current']\n"
             "assert c['thread'] == 3 and len(c['frames']) == 3\n"
             "f = c['frames'][0]\n"
             "assert f['function'] == 'hg_test_fault_site' and f['module'].endswith('unit_report')\n"
             "assert f['pc'].startswith('0x') and f['offset'].startswith('0x')\n"
             "a = r['stacks']['allocated']\n"
             "assert a['thread'] == 0 and a['frames'][0]['function'] == 'hg_test_allocator_site'\n"
             "assert r['stacks']['freed']['thread'] == 1\n"
             "assert r['summary'].startswith('heap-buffer-overflow in hg_test_fault_site (')\n"
             "assert set(r) == {'heapguard','pid','class','address','pc','thread','access','region','detail','stacks','summary'}\n");
}

TEST(JsonReport, UsesNullForWhatIsNotKnown) {
  TempDir dir;
  ReportSettings s = exit_settings(2);
  s.json = true;
  ChildResult r = run_child(dir, s, [] {
    uintptr_t current[1] = {inside(hg_test_caller)};
    MessageBuilder detail;
    detail.str("quote \" and\nnewline");
    ReportInfo info{};
    info.kind = ErrorKind::MetadataCorruption;
    info.address = 0x10;
    info.current = current;
    info.current_n = 1;
    info.detail = &detail;
    set_thread_number_source(nullptr);
    report_error(info);
  });
  std::string log = dir.path() + "/log." + std::to_string(r.pid);
  check_json(log,
             "assert r['class'] == 'heap-metadata-corruption' and r['thread'] is None\n"
             "assert r['access'] is None and r['region'] is None\n"
             "assert r['detail'] == 'quote \" and\\nnewline'\n"
             "assert r['stacks']['allocated'] is None and r['stacks']['freed'] is None\n");
}

// ---------------------------------------------------------------- exit behaviour

TEST(ExitBehaviour, RecoverableErrorsContinueWithHaltOnErrorZero) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.halt_on_error = false;
  ChildResult r = run_child(dir, s, [] {
    report_full(true);
    report_full(true);
    _exit(int(40 + errors_reported()));
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 42);
  auto lines = lines_of(r.log);
  EXPECT_EQ(lines.size(), 26u) << r.log;
}

TEST(ExitBehaviour, FatalErrorsHaltEvenWithHaltOnErrorZero) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.halt_on_error = false;
  ChildResult r = run_child(dir, s, [] { report_full(false); });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 7);
}

TEST(ExitBehaviour, FuzzModeAlwaysHalts) {
  TempDir dir;
  ReportSettings s = exit_settings(8);
  s.halt_on_error = false;
  s.fuzz = true;
  ChildResult r = run_child(dir, s, [] { report_full(true); });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 8);
}

TEST(ExitBehaviour, AbortOnErrorRaisesSigabrt) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.abort_on_error = true;
  ChildResult r = run_child(dir, s, [] { report_full(); });
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGABRT);
  EXPECT_NE(r.log.find("SUMMARY: HeapGuard: heap-buffer-overflow"), std::string::npos);
}

TEST(ExitBehaviour, SuppressedRecoverableErrorsAreSilent) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(7), [] {
    const char text[] = "heap-buffer-overflow:hg_test_fault_site\n";
    parse_suppressions(text, sizeof text - 1, "supp");
    report_full(true);
    _exit(int(50 + errors_reported()));
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 50);
  EXPECT_EQ(r.log, "");
}

TEST(ExitBehaviour, SuppressedFatalErrorsAreStillReported) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(7), [] {
    const char text[] = "*:unit_report\n";
    parse_suppressions(text, sizeof text - 1, "supp");
    report_full(false);
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 7);
  EXPECT_NE(r.log.find("ERROR: HeapGuard: heap-buffer-overflow"), std::string::npos);
}

uint32_t reenter() {
  ReportInfo info{};
  info.kind = ErrorKind::DoubleFree;
  info.address = 1;
  report_error(info);
  return 0;
}

TEST(ExitBehaviour, AnErrorWhileReportingAbortsAtOnce) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(7), [] {
    set_thread_number_source(&reenter);
    ReportInfo info{};
    info.kind = ErrorKind::DoubleFree;
    info.address = 2;
    report_error(info);
  });
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGABRT);
  EXPECT_EQ(r.log, "");
}

TEST(Concurrency, ReportsFromManyThreadsDoNotInterleave) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.halt_on_error = false;
  ChildResult r = run_child(dir, s, [] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([] {
        for (int i = 0; i < 10; ++i) report_full(true);
      });
    }
    for (auto& t : threads) t.join();
    _exit(errors_reported() == 40 ? 0 : 1);
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 0);
  auto lines = lines_of(r.log);
  ASSERT_EQ(lines.size(), 40u * 13u);
  for (size_t i = 0; i < lines.size(); i += 13) {
    EXPECT_NE(lines[i].find("ERROR: HeapGuard:"), std::string::npos) << i;
    EXPECT_TRUE(starts(lines[i + 12], "SUMMARY: HeapGuard:")) << i;
  }
}

TEST(Fork, AChildWritesItsOwnLogFile) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.halt_on_error = false;
  ChildResult r = run_child(dir, s, [&dir] {
    report_full(true);
    pid_t grandchild = fork();
    if (grandchild == 0) {
      report_full(true);
      _exit(0);
    }
    int status = 0;
    waitpid(grandchild, &status, 0);
    std::string theirs = read_file(dir.path() + "/log." + std::to_string(grandchild));
    _exit(lines_of(theirs).size() == 13 && theirs.find("==" + std::to_string(grandchild) + "==ERROR") == 0 ? 0 : 1);
  });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 0);
  EXPECT_EQ(lines_of(r.log).size(), 13u) << r.log;
}

TEST(Symbolize, SourceLocationsFollowTheRawReport) {
  TempDir dir;
  ReportSettings s = exit_settings(7);
  s.symbolize = true;
  ChildResult r = run_child(dir, s, [] { report_full(); });
  auto lines = lines_of(r.log);
  ASSERT_GE(lines.size(), 13u);
  EXPECT_TRUE(starts(lines[12], "SUMMARY: HeapGuard:"));
  if (lines.size() == 13) GTEST_SKIP() << "no external symbolizer";
  EXPECT_EQ(lines[13], "==" + std::to_string(r.pid) + "==HeapGuard: source locations:");
  EXPECT_EQ(lines[14], "current:");
  EXPECT_TRUE(starts(lines[15], "    #0 " + hex(inside(hg_test_fault_site)) + " in ")) << lines[15];
  EXPECT_NE(std::find(lines.begin(), lines.end(), "allocated by thread T0:"), lines.end());
  EXPECT_NE(std::find(lines.begin(), lines.end(), "freed by thread T1:"), lines.end());
}

// ---------------------------------------------------------------- leaks

void leak_report() {
  uintptr_t a[2] = {inside(hg_test_allocator_site), inside(hg_test_caller)};
  uintptr_t b[1] = {inside(hg_test_third_party)};
  LeakReportWriter w;
  w.begin(3, 96);
  w.group(64, 2, TraceRef{g_stack_depot.put(a, 2), 0});
  w.group(32, 1, TraceRef{g_stack_depot.put(b, 1), 2});
  w.end();
}

TEST(LeakReport, TextGroupsAndSummary) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(), [] { leak_report(); });
  EXPECT_TRUE(WIFEXITED(r.status));
  auto lines = lines_of(r.log);
  ASSERT_EQ(lines.size(), 7u) << r.log;
  EXPECT_EQ(lines[0], "==" + std::to_string(r.pid) + "==ERROR: HeapGuard: memory-leak: 96 bytes in 3 blocks are unreachable at exit");
  EXPECT_EQ(lines[1], "64 bytes in 2 blocks allocated by thread T0 here:");
  EXPECT_TRUE(starts(lines[2], "    #0 " + hex(inside(hg_test_allocator_site)) + " in hg_test_allocator_site (")) << lines[2];
  EXPECT_EQ(lines[4], "32 bytes in 1 blocks allocated by thread T2 here:");
  EXPECT_EQ(lines[6], "SUMMARY: HeapGuard: memory-leak 96 bytes in 3 blocks");
}

TEST(LeakReport, JsonAndSuppressedGroups) {
  TempDir dir;
  ReportSettings s = exit_settings();
  s.json = true;
  ChildResult r = run_child(dir, s, [] {
    const char text[] = "memory-leak:hg_test_third_party\n";
    parse_suppressions(text, sizeof text - 1, "supp");
    leak_report();
  });
  std::string log = dir.path() + "/log." + std::to_string(r.pid);
  check_json(log,
             "assert r['class'] == 'memory-leak' and r['pid'] == " + std::to_string(r.pid) + "\n"
             "assert len(r['leaks']) == 1\n"
             "l = r['leaks'][0]\n"
             "assert l['bytes'] == 64 and l['blocks'] == 2 and l['allocated']['thread'] == 0\n"
             "assert l['allocated']['frames'][0]['function'] == 'hg_test_allocator_site'\n"
             "assert r['total_bytes'] == 64 and r['total_blocks'] == 2\n");
}

TEST(LeakReport, EverythingSuppressedWritesNothing) {
  TempDir dir;
  ChildResult r = run_child(dir, exit_settings(), [] {
    const char text[] = "memory-leak:unit_report\n";
    parse_suppressions(text, sizeof text - 1, "supp");
    leak_report();
  });
  EXPECT_EQ(r.log, "");
}

}  // namespace
}  // namespace heapguard::test
