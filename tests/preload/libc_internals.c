/* SPDX-License-Identifier: Apache-2.0
 *
 * glibc allocates behind the program's back (stdio, NSS, iconv, regex,
 * locales, qsort, scandir, ...) and hands some of that memory to the program
 * to free(). Under preload all of it must come from heapguard: a block that
 * glibc got elsewhere and the program frees here would be an invalid free,
 * and a block heapguard gave glibc must survive glibc's own use of it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <iconv.h>
#include <locale.h>
#include <malloc.h>
#include <netdb.h>
#include <pwd.h>
#include <regex.h>
#include <search.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>
#include <wordexp.h>

#include "preload_check.h"

static int checks;

/* Every libc-returned block the program will free must be heapguard's. */
static void require_owned(const void *p, const char *what) {
  ++checks;
  if (!heapguard_test_owned(p)) {
    fprintf(stderr, "FAIL: %s returned %p, which heapguard does not own\n", what, p);
    exit(1);
  }
}

static void step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

static void check_calloc_and_strings(void) {
  size_t n = 5000;
  uint64_t *z = calloc(n, sizeof *z);
  HEAPGUARD_TEST_REQUIRE(z != NULL);
  for (size_t i = 0; i < n; ++i) HEAPGUARD_TEST_REQUIRE(z[i] == 0);
  free(z);
  /* volatile: the overflow must reach calloc at run time, not a warning. */
  volatile size_t huge = SIZE_MAX / 4;
  errno = 0;
  HEAPGUARD_TEST_REQUIRE(calloc(huge, 8) == NULL && errno == ENOMEM);

  char *a = strdup("heapguard strdup");
  char *b = strndup("heapguard strndup and more", 17);
  char *c = NULL;
  int len = asprintf(&c, "%s|%s|%d|%.3f", a, b, 42, 2.5);
  wchar_t *w = wcsdup(L"wide string");
  require_owned(a, "strdup");
  require_owned(b, "strndup");
  require_owned(c, "asprintf");
  require_owned(w, "wcsdup");
  step("strings: %s (%d bytes) %zu wide", c, len, wcslen(w));
  free(a);
  free(b);
  free(c);
  free(w);
  step("calloc: %zu zeroed words, overflow -> ENOMEM", n);
}

static void check_getline(void) {
  FILE *f = tmpfile();
  HEAPGUARD_TEST_REQUIRE(f != NULL);
  for (int i = 0; i < 400; ++i) {
    for (int j = 0; j < (i * 37) % 5000; ++j) fputc('a' + (i + j) % 26, f);
    fputc('\n', f);
  }
  rewind(f);
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  long total = 0;
  int lines = 0;
  while ((got = getline(&line, &cap, f)) >= 0) {
    total += got;
    ++lines;
  }
  require_owned(line, "getline");
  HEAPGUARD_TEST_REQUIRE(malloc_usable_size(line) >= cap);
  free(line);

  rewind(f);
  char *field = NULL;
  size_t field_cap = 0;
  int fields = 0;
  while (getdelim(&field, &field_cap, 'z', f) >= 0) ++fields;
  require_owned(field, "getdelim");
  free(field);
  fclose(f);
  step("getline: %d lines, %ld bytes; getdelim: %d fields", lines, total, fields);
}

static void check_memstreams(void) {
  char *buf = NULL;
  size_t size = 0;
  FILE *m = open_memstream(&buf, &size);
  HEAPGUARD_TEST_REQUIRE(m != NULL);
  for (int i = 0; i < 20000; ++i) fprintf(m, "%05d,", i);
  HEAPGUARD_TEST_REQUIRE(fclose(m) == 0);
  require_owned(buf, "open_memstream");
  HEAPGUARD_TEST_REQUIRE(size == 120000 && memcmp(buf + 6 * 19999, "19999,", 6) == 0);
  free(buf);

  wchar_t *wbuf = NULL;
  size_t wsize = 0;
  FILE *wm = open_wmemstream(&wbuf, &wsize);
  HEAPGUARD_TEST_REQUIRE(wm != NULL);
  for (int i = 0; i < 3000; ++i) fwprintf(wm, L"%d;", i);
  HEAPGUARD_TEST_REQUIRE(fclose(wm) == 0);
  require_owned(wbuf, "open_wmemstream");
  free(wbuf);

  char fixed[64];
  FILE *fm = fmemopen(fixed, sizeof fixed, "w");
  HEAPGUARD_TEST_REQUIRE(fm != NULL);
  fprintf(fm, "fmemopen %d", 7);
  HEAPGUARD_TEST_REQUIRE(fclose(fm) == 0);
  step("memstreams: %zu bytes, %zu wide chars, '%s'", size, wsize, fixed);
}

static void check_paths(const char *dir) {
  char *real = realpath(dir, NULL);
  require_owned(real, "realpath");
  char *cwd = getcwd(NULL, 0);
  require_owned(cwd, "getcwd");
  char *cwd2 = get_current_dir_name();
  require_owned(cwd2, "get_current_dir_name");
  HEAPGUARD_TEST_REQUIRE(strcmp(cwd, cwd2) == 0);
  char *canon = canonicalize_file_name(dir);
  require_owned(canon, "canonicalize_file_name");
  HEAPGUARD_TEST_REQUIRE(strcmp(real, canon) == 0);
  free(real);
  free(cwd);
  free(cwd2);
  free(canon);
  step("paths: realpath, getcwd, get_current_dir_name, canonicalize_file_name freed");
}

static int count_entries;
static int count_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
  (void)path;
  (void)sb;
  (void)ftw;
  if (type == FTW_F) ++count_entries;
  return 0;
}

static int skip_dots(const struct dirent *d) { return d->d_name[0] != '.'; }

static void check_directories(const char *dir) {
  char path[4096];
  for (int i = 0; i < 150; ++i) {
    snprintf(path, sizeof path, "%s/f%03d", dir, (i * 53) % 150);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    HEAPGUARD_TEST_REQUIRE(fd >= 0);
    close(fd);
  }
  struct dirent **list = NULL;
  int n = scandir(dir, &list, skip_dots, alphasort);
  HEAPGUARD_TEST_REQUIRE(n == 150);
  require_owned(list, "scandir list");
  for (int i = 0; i < n; ++i) {
    require_owned(list[i], "scandir entry");
    char want[16];
    snprintf(want, sizeof want, "f%03d", i);
    HEAPGUARD_TEST_REQUIRE(strcmp(list[i]->d_name, want) == 0);
    free(list[i]);
  }
  free(list);

  DIR *d = opendir(dir);
  HEAPGUARD_TEST_REQUIRE(d != NULL);
  int seen = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) seen += e->d_name[0] == 'f';
  closedir(d);

  snprintf(path, sizeof path, "%s/f1*", dir);
  glob_t g;
  HEAPGUARD_TEST_REQUIRE(glob(path, 0, NULL, &g) == 0);
  size_t globbed = g.gl_pathc;
  globfree(&g);

  count_entries = 0;
  HEAPGUARD_TEST_REQUIRE(nftw(dir, count_entry, 8, FTW_PHYS) == 0);
  step("directories: scandir %d sorted, readdir %d, glob f1* %zu, nftw %d", n, seen, globbed,
       count_entries);
  for (int i = 0; i < 150; ++i) {
    snprintf(path, sizeof path, "%s/f%03d", dir, i);
    unlink(path);
  }
}

static int compare_ints(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void check_qsort(void) {
  /* Large enough that glibc's merge sort takes its buffer from malloc. */
  size_t n = 200000;
  int *v = malloc(n * sizeof *v);
  HEAPGUARD_TEST_REQUIRE(v != NULL);
  uint32_t s = 7;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    v[i] = (int)(s >> 4);
  }
  qsort(v, n, sizeof *v, compare_ints);
  for (size_t i = 1; i < n; ++i) HEAPGUARD_TEST_REQUIRE(v[i - 1] <= v[i]);
  int key = v[n / 2];
  HEAPGUARD_TEST_REQUIRE(bsearch(&key, v, n, sizeof *v, compare_ints) != NULL);
  step("qsort: %zu ints sorted, min %d max %d", n, v[0], v[n - 1]);
  free(v);
}

static void check_printf(void) {
  /* Huge precision makes vfprintf allocate its work buffer. */
  int len = snprintf(NULL, 0, "%.5000f", 1e300);
  char *big = NULL;
  HEAPGUARD_TEST_REQUIRE(asprintf(&big, "%.5000f|%5000d|%Lf", 1e300, 7, 1e4000L) > len);
  require_owned(big, "asprintf (huge precision)");
  uint32_t sum = 0;
  for (const char *p = big; *p; ++p) sum = sum * 31 + (unsigned char)*p;
  free(big);
  step("printf: %%.5000f of 1e300 is %d chars, checksum %08x", len, sum);
}

static void check_nss(void) {
  struct passwd *pw = getpwnam("root");
  HEAPGUARD_TEST_REQUIRE(pw != NULL);
  step("getpwnam: %s uid=%d gid=%d", pw->pw_name, (int)pw->pw_uid, (int)pw->pw_gid);
  pw = getpwuid(0);
  HEAPGUARD_TEST_REQUIRE(pw != NULL && strcmp(pw->pw_name, "root") == 0);
  struct group *gr = getgrgid(0);
  HEAPGUARD_TEST_REQUIRE(gr != NULL && strcmp(gr->gr_name, "root") == 0);
  int users = 0;
  setpwent();
  while (getpwent() != NULL) ++users;
  endpwent();
  HEAPGUARD_TEST_REQUIRE(users > 0);

  struct addrinfo hints = {0};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  struct addrinfo *res = NULL;
  HEAPGUARD_TEST_REQUIRE(getaddrinfo("127.0.0.1", "6379", &hints, &res) == 0);
  require_owned(res, "getaddrinfo");
  freeaddrinfo(res);
  step("nss: getpwuid, getgrgid, getpwent walk, getaddrinfo(127.0.0.1) freed");
}

static size_t convert(const char *to, const char *from, const char *text) {
  iconv_t cd = iconv_open(to, from);
  HEAPGUARD_TEST_REQUIRE(cd != (iconv_t)-1);
  char out[256];
  char *in = (char *)text;
  size_t in_left = strlen(text);
  char *o = out;
  size_t out_left = sizeof out;
  HEAPGUARD_TEST_REQUIRE(iconv(cd, &in, &in_left, &o, &out_left) != (size_t)-1);
  HEAPGUARD_TEST_REQUIRE(iconv_close(cd) == 0);
  return sizeof out - out_left;
}

static void check_iconv(void) {
  const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac";
  size_t utf16 = convert("UTF-16LE", "UTF-8", text);
  /* Not built in: glibc dlopens the gconv module and allocates its steps. */
  size_t latin9 = convert("ISO-8859-15", "UTF-8", text);
  size_t utf32 = convert("UTF-32LE", "ISO-8859-15", "plain");
  step("iconv: UTF-16LE %zu bytes, ISO-8859-15 %zu bytes, UTF-32LE %zu bytes", utf16, latin9, utf32);
}

static void check_regex(void) {
  regex_t re;
  HEAPGUARD_TEST_REQUIRE(regcomp(&re, "([a-z]+)@([a-z]+)\\.(com|org)", REG_EXTENDED) == 0);
  const char *text = "mail alice@example.org or bob@test.com";
  regmatch_t m[4];
  HEAPGUARD_TEST_REQUIRE(regexec(&re, text, 4, m, 0) == 0);
  char user[32];
  snprintf(user, sizeof user, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), text + m[1].rm_so);
  regfree(&re);

  /* Back-references take regexec's allocating path. */
  regex_t back;
  HEAPGUARD_TEST_REQUIRE(regcomp(&back, "\\(a*\\)b\\1", 0) == 0);
  int repeated = regexec(&back, "xxaaabaaay", 0, NULL, 0) == 0;
  regfree(&back);

  regex_t bad;
  int err = regcomp(&bad, "([unclosed", REG_EXTENDED);
  char message[128];
  regerror(err, &bad, message, sizeof message);
  step("regex: match at %d '%s', backref %d, error '%s'", (int)m[0].rm_so, user, repeated, message);
}

static void check_locale(void) {
  const char *name = setlocale(LC_ALL, "C.UTF-8");
  HEAPGUARD_TEST_REQUIRE(name != NULL);
  char copy[32];
  snprintf(copy, sizeof copy, "%s", name);
  wchar_t wide[64];
  size_t wn = mbstowcs(wide, "gr\xc3\xbc\xc3\x9f dich", 64);
  locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
  HEAPGUARD_TEST_REQUIRE(loc != (locale_t)0);
  locale_t dup = duplocale(loc);
  HEAPGUARD_TEST_REQUIRE(dup != (locale_t)0);
  freelocale(dup);
  freelocale(loc);
  HEAPGUARD_TEST_REQUIRE(setlocale(LC_ALL, "C") != NULL);
  step("locale: %s, mbstowcs %zu wide chars, newlocale/duplocale freed", copy, wn);
}

static void check_environment_and_time(void) {
  char name[32];
  for (int i = 0; i < 200; ++i) {
    snprintf(name, sizeof name, "HEAPGUARD_TEST_VAR_%d", i);
    HEAPGUARD_TEST_REQUIRE(setenv(name, "some value that is long enough to allocate", 1) == 0);
  }
  for (int i = 0; i < 200; ++i) {
    snprintf(name, sizeof name, "HEAPGUARD_TEST_VAR_%d", i);
    HEAPGUARD_TEST_REQUIRE(unsetenv(name) == 0);
  }
  /* A POSIX TZ rule: parsed (and allocated) by tzset, needs no tzdata. */
  HEAPGUARD_TEST_REQUIRE(setenv("TZ", "EST5EDT,M3.2.0,M11.1.0", 1) == 0);
  tzset();
  time_t t = 1700000000;
  struct tm tm;
  HEAPGUARD_TEST_REQUIRE(localtime_r(&t, &tm) != NULL);
  char when[64];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
  step("environment: 200 variables set and unset; time: %s", when);
}

static void check_search_tables(void) {
  void *root = NULL;
  char key[16];
  for (int i = 0; i < 1000; ++i) {
    snprintf(key, sizeof key, "k%04d", (i * 7919) % 1000);
    char *k = strdup(key);
    char **slot = tsearch(k, &root, (int (*)(const void *, const void *))strcmp);
    HEAPGUARD_TEST_REQUIRE(slot != NULL && *slot == k);
  }
  tdestroy(root, free);

  HEAPGUARD_TEST_REQUIRE(hcreate(2000) != 0);
  char *keys[500];
  for (int i = 0; i < 500; ++i) {
    snprintf(key, sizeof key, "h%d", i);
    keys[i] = strdup(key);
    ENTRY e = {keys[i], (void *)(intptr_t)i};
    HEAPGUARD_TEST_REQUIRE(hsearch(e, ENTER) != NULL);
  }
  ENTRY probe = {"h321", NULL};
  ENTRY *found = hsearch(probe, FIND);
  HEAPGUARD_TEST_REQUIRE(found != NULL);
  int value = (int)(intptr_t)found->data;
  hdestroy();
  for (int i = 0; i < 500; ++i) free(keys[i]);
  step("search: tsearch 1000 keys destroyed with free, hsearch h321=%d", value);
}

static void check_process_helpers(void) {
  wordexp_t we;
  HEAPGUARD_TEST_REQUIRE(wordexp("alpha 'beta gamma' delta", &we, WRDE_NOCMD) == 0);
  size_t words = we.we_wordc;
  char second[32];
  snprintf(second, sizeof second, "%s", we.we_wordv[1]);
  wordfree(&we);

  /* backtrace() dlopens libgcc_s on first use; backtrace_symbols returns one
   * malloc'd block that the caller frees. */
  void *frames[16];
  int depth = backtrace(frames, 16);
  char **symbols = backtrace_symbols(frames, depth);
  require_owned(symbols, "backtrace_symbols");
  free(symbols);

  /* dlerror's message is allocated inside libdl. */
  HEAPGUARD_TEST_REQUIRE(dlopen("libheapguard-test-does-not-exist.so", RTLD_NOW) == NULL);
  HEAPGUARD_TEST_REQUIRE(dlerror() != NULL);

  FILE *p = popen("echo popen-ok", "r");
  HEAPGUARD_TEST_REQUIRE(p != NULL);
  char line[64] = {0};
  HEAPGUARD_TEST_REQUIRE(fgets(line, sizeof line, p) != NULL);
  HEAPGUARD_TEST_REQUIRE(pclose(p) == 0);
  line[strcspn(line, "\n")] = '\0';

  FILE *f = tmpfile();
  HEAPGUARD_TEST_REQUIRE(f != NULL);
  HEAPGUARD_TEST_REQUIRE(setvbuf(f, NULL, _IOFBF, 1 << 16) == 0);
  for (int i = 0; i < 10000; ++i) fputs("buffered ", f);
  HEAPGUARD_TEST_REQUIRE(fclose(f) == 0);

  step("helpers: wordexp %zu words ('%s'), backtrace_symbols freed, dlerror set, popen '%s'", words,
       second, line);
}

int main(void) {
  heapguard_test_require_loaded();
  char dir[] = "/tmp/heapguard-libc-XXXXXX";
  HEAPGUARD_TEST_REQUIRE(mkdtemp(dir) != NULL);
  check_calloc_and_strings();
  check_getline();
  check_memstreams();
  check_paths(dir);
  check_directories(dir);
  check_qsort();
  check_printf();
  check_nss();
  check_iconv();
  check_regex();
  check_locale();
  check_environment_and_time();
  check_search_tables();
  check_process_helpers();
  HEAPGUARD_TEST_REQUIRE(rmdir(dir) == 0);
  step("libc_internals: %d libc-allocated blocks owned by heapguard and freed", checks);
  return 0;
}
