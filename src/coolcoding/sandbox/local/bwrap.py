"""The bubblewrap command line, as a pure function of its inputs (codex ``bwrap.rs`` style).

Nothing here touches the file system: the host layout and the file descriptors are inputs, so
``tests/unit/test_bwrap_argv.py`` can check the whole argv. Every mount carries a comment saying
why it is there; anything not listed is simply absent from the sandbox (no /root, no /home of
the host, no /etc/shadow, no /run, no /sys, no other session's workspace).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SANDBOX_HOME = "/home/coder"
SANDBOX_WORKSPACE = "/workspace"
SANDBOX_APP_ALIAS = "/app"  # seed 000 runs code in /app; kept as a second mount of the workspace
SANDBOX_HOSTNAME = "coolcoding"
# System folders first; then the console scripts of packages installed in the workspace
# (sandbox/packages.py: pip --user into /workspace/.local, npm's node_modules).
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/workspace/.local/bin:/workspace/node_modules/.bin"
# The in-sandbox agent (coolcoding.agent): its package, read-only, on this import path, and the
# directory where it creates its unix socket.
AGENT_PYTHONPATH = "/opt/coolcoding"
AGENT_SOCKET_DIR = "/run/coolcoding"

# Host files under /etc that programs need and that hold no secrets; copied (when present) into
# the sandbox's generated /etc by ``etcdir.py``. Never /etc wholesale: it has shadow, ssh keys,
# /etc/ssl/private, the server's own config.
ETC_FROM_HOST: tuple[str, ...] = (
    "/etc/ld.so.cache",  # the dynamic linker's cache: every dynamically linked program
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",  # Debian's symlink farm: java, javac, editor, ... point through here
    "/etc/localtime",
    "/etc/bash.bashrc",  # Debian's prompt, completion hooks for interactive shells
    "/etc/inputrc",  # readline key bindings (Home/End, history search)
    "/etc/terminfo",
    "/etc/mime.types",
    "/etc/protocols",  # getprotobyname(): used by some socket libraries even on loopback
    "/etc/matplotlibrc",  # Debian's matplotlib reads its defaults here (import fails without)
    "/etc/services",
    "/etc/ssl/openssl.cnf",  # OpenSSL's config (python's ssl module loads it); no keys in it
)
# Only with network access: CA certificates for HTTPS. (resolv.conf is generated: the sandbox
# asks slirp4netns's DNS forwarder, see netpolicy.py, never the host's resolver directly.)
ETC_FROM_HOST_NETWORK: tuple[str, ...] = (
    "/etc/ssl/certs",
    "/etc/ca-certificates.conf",
    "/etc/gai.conf",
)


@dataclass(frozen=True)
class HostLayout:
    """Where the host keeps its system files (found once by ``environment.detect_host_layout``).

    ``symlinks``: top-level links of a merged-/usr system (``/bin -> usr/bin``), recreated as
    symlinks. ``ro_dirs``: directories bound read-only at the same path (``/usr``, and ``/bin``,
    ``/lib``... on a non-merged host). ``etc_extra``: host-specific /etc entries that exist and
    are needed (e.g. ``/etc/java-17-openjdk`` for the JDK's jvm.cfg).
    """

    ro_dirs: tuple[str, ...] = ("/usr",)
    symlinks: tuple[tuple[str, str], ...] = ()
    etc_extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class BwrapConfig:
    """Everything that varies between two sandboxed processes."""

    layout: HostLayout
    uid: int
    gid: int
    # O_PATH fds of the session's workspace directory, opened by the server without following
    # links (one per mount point: bwrap closes an fd after binding it). bwrap still resolves
    # /proc/self/fd/N as the sandbox uid, so the ancestors need o+x (checked at start-up).
    workspace_fd: int
    app_alias_fd: int
    # O_PATH fd of the sandbox's generated /etc directory (see etcdir.py): one bind mount instead
    # of one per file keeps the start cheap (each bind costs a mount + a read-only remount).
    etc_fd: int
    # True only when the spawning pre-exec joined the sandbox's own network namespace.
    network: bool = False
    # exec: a new session, so the program has no controlling terminal and cannot TIOCSTI into
    # anything. Terminals: False, because the server's pre-exec already made the PTY the
    # controlling tty of a new session (see process.py); that PTY is private to this sandbox.
    new_session: bool = True
    cwd: str = SANDBOX_WORKSPACE
    tmp_bytes: int = 64 * 1024 * 1024
    home_bytes: int = 64 * 1024 * 1024
    extra_ro_binds: Mapping[str, str] = field(default_factory=dict)
    json_status_fd: int | None = None
    # fd of the seccomp BPF program (seccomp.py); bwrap installs it right before the exec.
    seccomp_fd: int | None = None
    # The agent as the sandbox's first process (agent_launch.py). Its code is stdlib-only and
    # runs on the sandbox's own /usr/bin/python3, so only the package directory is bound,
    # read-only; never the server's virtualenv (under /root, mode 0700, with every dependency).
    agent_package_dir: str | None = None
    # Host directory (this sandbox's alone, owned by its uid, mode 0700) bound read-write at
    # AGENT_SOCKET_DIR: the agent's socket appears on the host for the server, and in no other
    # sandbox.
    agent_socket_dir: str | None = None
    # False only for a session's agent: the sandbox outlives the API process that started it
    # (a restart or a crash of the server kills no shell; the next process finds it from the
    # DB, and stop kills its whole cgroup). Everything else dies with the server.
    die_with_parent: bool = True


def build_bwrap_argv(bwrap: str, cfg: BwrapConfig, command: Sequence[str]) -> list[str]:
    """The full argv: ``[bwrap, options..., "--", command...]``."""
    if not command:
        raise ValueError("empty command")
    if not cfg.cwd.startswith("/"):
        raise ValueError(f"cwd must be absolute inside the sandbox: {cfg.cwd!r}")
    a: list[str] = [bwrap]
    # Namespaces: user, ipc, pid, net, uts, cgroup. The user namespace maps the sandbox uid to
    # itself (never to 0): an unprivileged host uid stays unprivileged on every host file.
    a += ["--unshare-all"]
    if cfg.network:
        # The session opted into network access: the pre-exec already joined the sandbox's own
        # network namespace (network.py: user-mode NAT, no route to the host or private
        # ranges), which bwrap keeps. Never the host's namespace.
        a += ["--share-net"]
    # Explicit on top of --unshare-all (fail closed if bwrap's defaults ever change; bwrap
    # insists on an explicit --unshare-user for --disable-userns).
    a += ["--unshare-user", "--unshare-pid"]
    if cfg.die_with_parent:
        a += ["--die-with-parent"]
    # No nested user namespaces: closes the kernel attack surface reachable only as "root" in a
    # fresh userns (nftables, overlayfs...).
    a += ["--disable-userns", "--assert-userns-disabled"]
    if cfg.new_session:
        a += ["--new-session"]
    if cfg.json_status_fd is not None:
        a += ["--json-status-fd", str(cfg.json_status_fd)]
    if cfg.seccomp_fd is not None:
        a += ["--seccomp", str(cfg.seccomp_fd)]
    a += ["--hostname", SANDBOX_HOSTNAME]

    # System directories, read-only, at their usual paths (python3, bash, gcc, the JDK in
    # /usr/lib/jvm...). The host's /root (its pyenv python) and /home are never mounted.
    for d in cfg.layout.ro_dirs:
        a += ["--ro-bind", d, d]
    for link, target in cfg.layout.symlinks:
        a += ["--symlink", target, link]
    # Fresh procfs of the new pid namespace: only the sandbox's own processes are visible.
    a += ["--proc", "/proc"]
    # Minimal /dev (null, zero, full, random, urandom, tty, pts, shm): no host devices.
    a += ["--dev", "/dev"]

    # /etc: generated passwd/group/hosts/profile plus copies of the harmless host files above.
    a += ["--ro-bind-fd", str(cfg.etc_fd), "/etc"]

    # Private, size-limited scratch space (tmpfs pages are also charged to the memory cgroup).
    a += ["--size", str(cfg.tmp_bytes), "--tmpfs", "/tmp"]
    a += ["--dir", "/home", "--size", str(cfg.home_bytes), "--tmpfs", SANDBOX_HOME]
    # The session's files, read-write, and the same directory again at the seed's /app path.
    a += ["--bind-fd", str(cfg.workspace_fd), SANDBOX_WORKSPACE]
    a += ["--bind-fd", str(cfg.app_alias_fd), SANDBOX_APP_ALIAS]
    # Extra read-only files chosen by the server (e.g. the terminal's shell-integration script
    # at /etc/profile.d/...; etcdir.py pre-creates mount points under /etc, which is read-only).
    # Sorted so the argv is deterministic.
    for host_path, sandbox_path in sorted(cfg.extra_ro_binds.items(), key=lambda kv: kv[1]):
        a += ["--ro-bind", host_path, sandbox_path]
    if cfg.agent_package_dir is not None:
        a += ["--ro-bind", cfg.agent_package_dir, f"{AGENT_PYTHONPATH}/coolcoding"]
    if cfg.agent_socket_dir is not None:
        a += ["--bind", cfg.agent_socket_dir, AGENT_SOCKET_DIR]
    # bwrap builds the root on a tmpfs that the sandbox user owns; freeze it so "/" and "/etc"
    # are read-only (EROFS). /tmp, the home and the workspace are separate, writable mounts.
    a += ["--remount-ro", "/"]
    a += ["--chdir", cfg.cwd]
    a += ["--", *command]
    return a


def passwd_file(uid: int, gid: int) -> bytes:
    """/etc/passwd: root and nobody (owners of read-only files) and the sandbox user "coder"."""
    return (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"coder:x:{uid}:{gid}:coder:{SANDBOX_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ).encode()


def group_file(gid: int) -> bytes:
    return f"root:x:0:\ncoder:x:{gid}:\nnogroup:x:65534:\n".encode()


def hosts_file() -> bytes:
    return f"127.0.0.1\tlocalhost {SANDBOX_HOSTNAME}\n::1\tlocalhost ip6-localhost\n".encode()


# /etc/profile for login shells: our PATH, Debian's interactive defaults, then /etc/profile.d
# (where the terminal's shell integration is mounted through ``extra_ro_binds``).
PROFILE = f"""\
# Generated by coolcoding: the sandbox's /etc/profile.
export PATH={SANDBOX_PATH}
if [ -n "${{BASH_VERSION-}}" ] && [ -n "${{PS1-}}" ] && [ -r /etc/bash.bashrc ]; then
  . /etc/bash.bashrc
fi
for f in /etc/profile.d/*.sh; do
  [ -r "$f" ] && . "$f"
done
unset f
""".encode()


def etc_files(uid: int, gid: int) -> dict[str, bytes]:
    """The generated part of the sandbox's /etc (no shadow, nothing copied from the host)."""
    return {
        "/etc/passwd": passwd_file(uid, gid),
        "/etc/group": group_file(gid),
        "/etc/hostname": f"{SANDBOX_HOSTNAME}\n".encode(),
        "/etc/hosts": hosts_file(),
        "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files dns\n",
        "/etc/profile": PROFILE,
    }


def sandbox_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a sandboxed program; nothing is inherited from the server."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": SANDBOX_HOME,
        "USER": "coder",
        "LOGNAME": "coder",
        "SHELL": "/bin/bash",
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
    }
    if extra:
        env.update(extra)
    return env
