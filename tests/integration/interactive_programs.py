"""A guessing game for interactive judging (tests and bench): the interactor knows a number
from 1 to N (``input``: "N QUERIES", ``expected``: the number, N if empty), answers "? g" with "<", ">" or
"=" and accepts "! x" when x is the number; more than QUERIES questions is a wrong answer."""

from __future__ import annotations

GUESS_INTERACTOR = r"""
import sys
n, limit = map(int, open("input").read().split())
secret = int(open("expected").read() or n)  # no expected number: N
print(n, flush=True)
asked = 0
while True:
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("the program ended without an answer\n")
        sys.exit(1)
    parts = line.split()
    if len(parts) != 2 or parts[0] not in ("?", "!") or not parts[1].lstrip("-").isdigit():
        sys.stderr.write(f"bad line {line[:50]!r}\n")
        sys.exit(1)
    g = int(parts[1])
    if parts[0] == "!":
        if g == secret:
            sys.exit(0)
        sys.stderr.write(f"wrong guess {g}, the number was {secret}\n")
        sys.exit(1)
    asked += 1
    if asked > limit:
        sys.stderr.write(f"too many queries ({asked} > {limit})\n")
        sys.exit(1)
    sys.stdout.write("<\n" if secret < g else ">\n" if secret > g else "=\n")
    sys.stdout.flush()
"""

PY_BINARY_SEARCH = """
n = int(input())
lo, hi = 1, n
while True:
    mid = (lo + hi) // 2
    print("?", mid, flush=True)
    r = input()
    if r == "=":
        print("!", mid, flush=True)
        break
    if r == "<":
        hi = mid - 1
    else:
        lo = mid + 1
"""

C_BINARY_SEARCH = r"""
#include <stdio.h>
int main(void) {
    long n, lo = 1, hi; char r[8];
    if (scanf("%ld", &n) != 1) return 2;
    hi = n;
    for (;;) {
        long mid = (lo + hi) / 2;
        printf("? %ld\n", mid); fflush(stdout);
        if (scanf("%7s", r) != 1) return 3;
        if (r[0] == '=') { printf("! %ld\n", mid); fflush(stdout); return 0; }
        if (r[0] == '<') hi = mid - 1; else lo = mid + 1;
    }
}
"""

# One question per number from 1 up: N exchanges to find N.
C_LINEAR_SEARCH = r"""
#include <stdio.h>
int main(void) {
    long n; char r[8];
    if (scanf("%ld", &n) != 1) return 2;
    for (long g = 1; g <= n; g++) {
        printf("? %ld\n", g); fflush(stdout);
        if (scanf("%7s", r) != 1) return 3;
        if (r[0] == '=') { printf("! %ld\n", g); fflush(stdout); return 0; }
    }
    return 4;
}
"""

PY_WRONG_GUESS = PY_BINARY_SEARCH.replace('print("!", mid, flush=True)',
                                          'print("!", mid + 1, flush=True)')  # fmt: skip

PY_LINEAR_SEARCH = """
n = int(input())
for g in range(1, n + 1):
    print("?", g, flush=True)
    if input() == "=":
        print("!", g, flush=True)
        break
"""

C_CRASH_AFTER_ONE_QUERY = r"""
#include <stdio.h>
int main(void) {
    long n; char r[8];
    if (scanf("%ld", &n) != 1) return 2;
    printf("? 1\n"); fflush(stdout);
    if (scanf("%7s", r) != 1) return 3;
    volatile int *p = 0; *p = 1;  /* SIGSEGV */
    return 0;
}
"""

# Reads two lines while the interactor sent one and waits for a question: both wait.
PY_DEADLOCK = "n = input()\nm = input()\n"

INTERACTOR_CRASH = "import sys\nprint(5, flush=True)\nsys.stdin.readline()\nsys.exit(3)\n"
INTERACTOR_LOOPS = "while True:\n    pass\n"
