"""One program per language whose behaviour is chosen by the first line of stdin, so each language
is compiled once (the judge's compile cache) and run once per verdict.

Modes: ok (prints "hello"), crash (dies: a signal where the language allows it), loop (burns CPU),
sleep (idles), mem (allocates without bound), print (prints forever), eof (reads stdin to its
end, which is not there, then prints "eof"), daemon (leaves a detached `sleep 987654` behind
and exits 0), fork (fork bomb; not every language).
"""

from __future__ import annotations

DAEMON_MARK = "987654"

PROGRAMS: dict[str, str] = {
    "python": """\
import os, subprocess, sys, time
m = sys.stdin.readline().strip()
if m == "ok":
    print("hello")
elif m == "crash":
    import ctypes
    ctypes.string_at(0)
elif m == "loop":
    while True:
        pass
elif m == "sleep":
    time.sleep(100)
elif m == "mem":
    a = []
    while True:
        a.append(b"x" * 1_000_000)
elif m == "print":
    while True:
        print("y" * 100)
elif m == "eof":
    sys.stdin.read()
    print("eof")
elif m == "daemon":
    subprocess.Popen(["sleep", "987654"], start_new_session=True, stdout=subprocess.DEVNULL)
    print("bye")
elif m == "fork":
    while True:
        try:
            os.fork()
        except OSError:
            pass
""",
    "javascript": """\
const fs = require("fs");
const m = fs.readFileSync(0, "utf8").split("\\n")[0].trim();
if (m === "ok") console.log("hello");
else if (m === "crash") process.kill(process.pid, "SIGSEGV");
else if (m === "loop") { for (;;) {} }
else if (m === "sleep") setTimeout(() => {}, 100000);
else if (m === "mem") { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); }
else if (m === "print") { const s = "y".repeat(100) + "\\n"; for (;;) fs.writeSync(1, s); }
else if (m === "eof") console.log("eof");
else if (m === "daemon") {
  require("child_process").spawn("sleep", ["987654"], { detached: true, stdio: "ignore" }).unref();
  console.log("bye");
}
""",
    "bash": """\
read -r m
case "$m" in
  ok) echo hello ;;
  crash) kill -SEGV $$ ;;
  loop) while :; do :; done ;;
  sleep) sleep 100 ;;
  mem) x=aaaaaaaaaaaaaaaa; while :; do x="$x$x"; done ;;
  print) while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done ;;
  eof) cat >/dev/null; echo eof ;;
  daemon) setsid sleep 987654 >/dev/null 2>&1 < /dev/null & echo bye ;;
  fork) f() { f | f & }; f; wait ;;
esac
""",
    "c": """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
  char m[32] = {0};
  if (scanf("%31s", m) != 1) return 2;
  if (!strcmp(m, "ok")) puts("hello");
  else if (!strcmp(m, "crash")) { volatile int *p = 0; *p = 1; }
  else if (!strcmp(m, "loop")) { volatile unsigned long x = 0; for (;;) x++; }
  else if (!strcmp(m, "sleep")) sleep(100);
  else if (!strcmp(m, "mem")) { for (;;) { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); } }
  else if (!strcmp(m, "print")) { for (;;) puts("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"); }
  else if (!strcmp(m, "eof")) { while (getchar() != EOF) {} puts("eof"); }
  else if (!strcmp(m, "daemon")) {
    if (fork() == 0) { setsid(); execl("/bin/sleep", "sleep", "987654", (char *)0); }
    puts("bye");
  }
  else if (!strcmp(m, "fork")) { for (;;) fork(); }
  else if (!strncmp(m, "alloc", 5)) {
    long mb = atol(m + 5); volatile char *p = malloc(mb << 20); memset((char *)p, 1, mb << 20);
    printf("done %d\\n", p[(mb << 20) - 1]);
  }
  return 0;
}
""",
    "cpp": """\
#include <chrono>
#include <csignal>
#include <iostream>
#include <string>
#include <thread>
#include <vector>
int main() {
  std::string m;
  std::cin >> m;
  if (m == "ok") std::cout << "hello\\n";
  else if (m == "crash") std::raise(SIGSEGV);
  else if (m == "loop") { volatile unsigned long x = 0; for (;;) x++; }
  else if (m == "sleep") std::this_thread::sleep_for(std::chrono::seconds(100));
  else if (m == "mem") { std::vector<std::vector<char>> v; for (;;) v.emplace_back(1 << 20, 1); }
  else if (m == "print") { for (;;) std::cout << "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\\n"; }
  else if (m == "eof") { std::string s; while (std::cin >> s) {} std::cout << "eof\\n"; }
  return 0;
}
""",
    "java": """\
import java.util.*;
public class Main {
  public static void main(String[] args) throws Exception {
    Scanner sc = new Scanner(System.in);
    String m = sc.hasNext() ? sc.next() : "";
    if (m.equals("ok")) System.out.println("hello");
    else if (m.equals("crash")) throw new IllegalStateException("boom");
    else if (m.equals("loop")) { long x = 0; while (true) { x++; if (x == -1) break; } }
    else if (m.equals("sleep")) Thread.sleep(100000);
    else if (m.equals("mem")) { List<long[]> l = new ArrayList<>(); while (true) l.add(new long[1 << 17]); }
    else if (m.equals("print")) { while (true) System.out.println("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"); }
    else if (m.equals("eof")) { while (sc.hasNext()) sc.next(); System.out.println("eof"); }
  }
}
""",
    "rust": """\
use std::io::{self, BufRead, Read, Write};
fn main() {
    let stdin = io::stdin();
    let mut m = String::new();
    stdin.lock().read_line(&mut m).unwrap();
    match m.trim() {
        "ok" => println!("hello"),
        "crash" => std::process::abort(),
        "loop" => { let mut x: u64 = 0; loop { x = x.wrapping_add(1); unsafe { std::ptr::read_volatile(&x); } } }
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(100)),
        "mem" => { let mut v = Vec::new(); loop { v.push(vec![1u8; 1 << 20]); } }
        "print" => { let out = io::stdout(); let mut o = out.lock(); loop { writeln!(o, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy").unwrap(); } }
        "eof" => { let mut s = String::new(); stdin.lock().read_to_string(&mut s).unwrap(); println!("eof"); }
        _ => {}
    }
}
""",
}

# A program that does not compile, per compiled language.
BROKEN: dict[str, str] = {
    "c": "int main(void) { return undefined_name; }\n",
    "cpp": "int main() { std::string s = 1; }\n",
    "java": 'public class Main { public static void main(String[] a) { int x = "s"; } }\n',
    "rust": 'fn main() { let x: u32 = "s"; }\n',
}

# The signal each language's "crash" mode dies of (None: a non-zero exit code instead).
CRASH_SIGNAL: dict[str, int | None] = {
    "python": 11,
    "javascript": 11,
    "bash": 11,
    "c": 11,
    "cpp": 11,
    "java": None,
    "rust": 6,
}
