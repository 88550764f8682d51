/* The warm pool's zygote without bash and env(1): the protocol of ZYGOTE_SCRIPT (zygote.py).
 *
 * argv[1..3]: the release pipe, the control fd, the request memfd (decimal fd numbers).
 * Writes R on the control fd, blocks reading one byte of the release pipe (EOF: exit 1), reads
 * the request from offset 0 of the memfd: NUL-ended fields cwd, PATH, k, k x (ulimit flag,
 * soft, hard), n, n "NAME=value" env entries, argv. It closes every fd but 0-2 and the control
 * fd (close-on-exec: a failed exec can still report), lowers the rlimits (setrlimit: a raise
 * fails, as bash's ulimit does without CAP_SYS_RESOURCE), chdirs, checks the program as bash's
 * ``type -P`` does (a name with a slash is that file; else the first executable in PATH, an
 * empty element or an empty PATH meaning the cwd), then execs it with exactly the request's
 * environment, in order (execvp on that environment's PATH, as env(1) and bwrap do). Any
 * failure, the exec's included: X on the control fd, exit 127.
 *
 * The request comes from the server, but nothing here trusts it: every count is bounded by the
 * fields read, every number is parsed strictly, the buffer holds MAX_REQUEST_BYTES at most and
 * a request that does not end in NUL is refused. Only libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAX_REQUEST_BYTES
#error "build with -DMAX_REQUEST_BYTES=<zygote.MAX_REQUEST_BYTES>"
#endif
#define MAX_RLIMITS 16

extern char **environ;

/* Static: a field is at least its NUL, so there are at most MAX_REQUEST_BYTES of them. */
static char request[MAX_REQUEST_BYTES + 1];
static char *fields[MAX_REQUEST_BYTES + 1];
static char *env[MAX_REQUEST_BYTES + 1];
static char candidate[PATH_MAX];
static int ctl = -1;

static void fail(void) {
  if (ctl >= 0 && write(ctl, "X", 1) < 0) {
    /* nothing left to tell */
  }
  _exit(127);
}

/* A non-negative decimal without sign or spaces, at most ``max``; -1 if not. */
static long parse_count(const char *s, long max) {
  long v = 0;
  if (*s == '\0') return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (max - (*s - '0')) / 10) return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

/* ulimit's value: "unlimited" or a decimal count of ``unit``s. */
static int parse_limit(const char *s, rlim_t unit, rlim_t *out) {
  rlim_t v = 0, max = (RLIM_INFINITY - 1) / unit;
  if (strcmp(s, "unlimited") == 0) {
    *out = RLIM_INFINITY;
    return 0;
  }
  if (*s == '\0') return -1;
  for (; *s; s++) {
    rlim_t d = (rlim_t)(*s - '0');
    if (*s < '0' || *s > '9' || v > (max - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v * unit;
  return 0;
}

/* The ulimit flags zygote.ULIMIT_FLAGS writes, with their units. */
static int resource_of(const char *flag, rlim_t *unit) {
  if (flag[0] == '\0' || flag[1] != '\0') return -1;
  *unit = 1;
  switch (flag[0]) {
    case 'c': *unit = 1024; return RLIMIT_CORE;
    case 'f': *unit = 1024; return RLIMIT_FSIZE;
    case 'u': return RLIMIT_NPROC;
    case 'n': return RLIMIT_NOFILE;
    case 't': return RLIMIT_CPU;
    default: return -1;
  }
}

/* bash's file_status(): exists, not a directory, executable for the effective ids. */
static int executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && eaccess(path, X_OK) == 0;
}

/* ``type -P name`` with PATH=path (findcmd.c): found, or not. */
static int found_in_path(const char *name, const char *path) {
  size_t name_len = strlen(name);
  if (strchr(name, '/') != NULL || *path == '\0') return executable(name);
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    size_t len = (size_t)(end - p);
    if (len == 0) {  /* an empty element is the cwd */
      p = ".";
      len = 1;
    }
    if (len + 1 + name_len < sizeof candidate) {  /* longer: ENAMETOOLONG for stat too */
      memcpy(candidate, p, len);
      candidate[len] = '/';
      memcpy(candidate + len + 1, name, name_len + 1);
      if (executable(candidate)) return 1;
    }
    if (*end == '\0') return 0;
    p = end;
  }
}

/* Every fd but 0-2 and the control fd closed; the control fd closed by a successful exec. */
static void close_fds(void) {
#ifdef SYS_close_range
  if ((ctl == 3 || syscall(SYS_close_range, 3u, (unsigned)ctl - 1, 0u) == 0) &&
      syscall(SYS_close_range, (unsigned)ctl + 1, ~0u, 0u) == 0) {
    if (fcntl(ctl, F_SETFD, FD_CLOEXEC) < 0) fail();
    return;
  }
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 1 << 20) max = 1 << 20;
  for (long fd = 3; fd < max; fd++)
    if (fd != ctl) close((int)fd);
  if (fcntl(ctl, F_SETFD, FD_CLOEXEC) < 0) fail();
}

static ssize_t read_request(int fd) {
  size_t len = 0;
  while (len < sizeof request) {
    ssize_t r = pread(fd, request + len, sizeof request - len, (off_t)len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    len += (size_t)r;
  }
  return (ssize_t)len;
}

int main(int argc, char **argv) {
  if (argc != 4) return 1;
  long go = parse_count(argv[1], INT_MAX), req = parse_count(argv[3], INT_MAX);
  ctl = (int)parse_count(argv[2], INT_MAX);
  if (go < 0 || ctl < 3 || req < 0) return 1;
  if (write(ctl, "R", 1) != 1) return 1;
  char byte;
  ssize_t r;
  while ((r = read((int)go, &byte, 1)) < 0 && errno == EINTR) {
  }
  if (r != 1) return 1;

  ssize_t len = read_request((int)req);
  /* Above the cap (the buffer's last byte read) or not ending a field: not the host's. */
  if (len <= 0 || (size_t)len > MAX_REQUEST_BYTES || request[len - 1] != '\0') fail();
  long nf = 0;
  for (char *p = request; p < request + len; p += strlen(p) + 1) fields[nf++] = p;
  close_fds();

  if (nf < 3) fail();
  long k = parse_count(fields[2], MAX_RLIMITS), i = 3;
  if (k < 0 || i + 3 * k >= nf) fail();
  for (long j = 0; j < k; j++, i += 3) {
    rlim_t unit;
    struct rlimit rl;
    int res = resource_of(fields[i], &unit);
    if (res < 0 || parse_limit(fields[i + 1], unit, &rl.rlim_cur) < 0 ||
        parse_limit(fields[i + 2], unit, &rl.rlim_max) < 0 || setrlimit(res, &rl) < 0)
      fail();
  }
  long n = parse_count(fields[i], nf);
  if (n < 0 || i + 1 + n >= nf) fail();  /* no argv[0] */
  for (long j = 0; j < n; j++) {
    const char *e = fields[i + 1 + j];
    if (e[0] == '=' || strchr(e, '=') == NULL) fail();  /* env(1) would not set it */
    env[j] = fields[i + 1 + j];
  }
  env[n] = NULL;
  char **args = &fields[i + 1 + n];
  fields[nf] = NULL;

  if (chdir(fields[0]) < 0 || !found_in_path(args[0], fields[1])) fail();
  environ = env;
  execvp(args[0], args);
  fail();
}
