"""Golden test of the whole bubblewrap argv (codex bwrap.rs style): any change is deliberate."""

from __future__ import annotations

from coolcoding.sandbox.local.bwrap import BwrapConfig, HostLayout, build_bwrap_argv, etc_files

LAYOUT = HostLayout(
    ro_dirs=("/usr",),
    symlinks=(("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")),
)


def config(**kw: object) -> BwrapConfig:
    values: dict[str, object] = {
        "layout": LAYOUT,
        "uid": 201234,
        "gid": 201234,
        "workspace_fd": 10,
        "app_alias_fd": 11,
        "etc_fd": 12,
        "json_status_fd": 13,
    }
    values.update(kw)
    return BwrapConfig(**values)  # type: ignore[arg-type]


COMMON_HEAD = [
    "/usr/bin/bwrap",
    "--unshare-all",
]
COMMON_TAIL = [
    "--unshare-user",
    "--unshare-pid",
    "--die-with-parent",
    "--disable-userns",
    "--assert-userns-disabled",
]
MOUNTS = [
    "--hostname", "coolcoding",
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/bin", "/bin",
    "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64",
    "--proc", "/proc",
    "--dev", "/dev",
    "--ro-bind-fd", "12", "/etc",
    "--size", "67108864", "--tmpfs", "/tmp",
    "--dir", "/home", "--size", "67108864", "--tmpfs", "/home/coder",
    "--bind-fd", "10", "/workspace",
    "--bind-fd", "11", "/app",
]  # fmt: skip


def test_exec_argv_is_isolated_without_network() -> None:
    argv = build_bwrap_argv("/usr/bin/bwrap", config(), ["python3", "main.py"])
    assert argv == [
        *COMMON_HEAD,
        *COMMON_TAIL,
        "--new-session",
        "--json-status-fd", "13",
        *MOUNTS,
        "--remount-ro", "/",
        "--chdir", "/workspace",
        "--", "python3", "main.py",
    ]  # fmt: skip


def test_terminal_argv_keeps_the_joined_netns_only_when_enabled_and_keeps_the_pty() -> None:
    """``network=True``: the pre-exec joined the sandbox's own network namespace (network.py),
    so bwrap must not unshare it; never the host's (LocalSandbox refuses to spawn without)."""
    cfg = config(
        network=True,
        new_session=False,
        json_status_fd=None,
        cwd="/workspace/src",
        extra_ro_binds={"/srv/cc/shell.sh": "/etc/profile.d/coolcoding.sh"},
    )
    argv = build_bwrap_argv("/usr/bin/bwrap", cfg, ["/bin/bash", "--login", "-i"])
    assert argv == [
        *COMMON_HEAD,
        "--share-net",
        *COMMON_TAIL,
        *MOUNTS,
        "--ro-bind", "/srv/cc/shell.sh", "/etc/profile.d/coolcoding.sh",
        "--remount-ro", "/",
        "--chdir", "/workspace/src",
        "--", "/bin/bash", "--login", "-i",
    ]  # fmt: skip


def test_agent_argv_binds_only_the_package_read_only_and_its_socket_dir() -> None:
    cfg = config(
        agent_package_dir="/srv/cc/src/coolcoding",
        agent_socket_dir="/var/lib/cc/agents/s1",
        json_status_fd=None,
    )
    argv = build_bwrap_argv("/usr/bin/bwrap", cfg, ["/usr/bin/python3", "-m", "coolcoding.agent"])
    assert argv == [
        *COMMON_HEAD,
        *COMMON_TAIL,
        "--new-session",
        *MOUNTS,
        "--ro-bind", "/srv/cc/src/coolcoding", "/opt/coolcoding/coolcoding",
        "--bind", "/var/lib/cc/agents/s1", "/run/coolcoding",
        "--remount-ro", "/",
        "--chdir", "/workspace",
        "--", "/usr/bin/python3", "-m", "coolcoding.agent",
    ]  # fmt: skip


def test_a_session_agent_outlives_the_server_only_without_die_with_parent() -> None:
    """The agent's sandbox is the one started without --die-with-parent (it outlives the API
    process); every other invocation keeps it."""
    kept = build_bwrap_argv("/usr/bin/bwrap", config(), ["true"])
    agent = build_bwrap_argv("/usr/bin/bwrap", config(die_with_parent=False), ["true"])
    assert "--die-with-parent" in kept
    assert [a for a in kept if a != "--die-with-parent"] == agent


def test_never_binds_host_secrets_or_home_dirs() -> None:
    argv = build_bwrap_argv("/usr/bin/bwrap", config(network=True), ["true"])
    sources = [
        argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--dev-bind")
    ]
    assert sources == ["/usr"]  # everything else is fd-bound, generated or a fresh tmpfs
    assert "--uid" not in argv  # the sandbox uid is mapped to itself, never to 0


def test_generated_passwd_has_the_sandbox_user_and_no_shadow() -> None:
    files = etc_files(201234, 201234)
    assert b"coder:x:201234:201234:coder:/home/coder:/bin/bash" in files["/etc/passwd"]
    assert "/etc/shadow" not in files
    assert set(files) == {
        "/etc/passwd", "/etc/group", "/etc/hostname", "/etc/hosts", "/etc/nsswitch.conf",
        "/etc/profile",
    }  # fmt: skip


def test_refuses_relative_cwd_and_empty_command() -> None:
    import pytest

    with pytest.raises(ValueError):
        build_bwrap_argv("/usr/bin/bwrap", config(cwd="workspace"), ["true"])
    with pytest.raises(ValueError):
        build_bwrap_argv("/usr/bin/bwrap", config(), [])


def test_agent_limits_from_settings_are_exactly_the_agents_options() -> None:
    from dataclasses import fields

    from coolcoding.agent.server import AgentLimits
    from coolcoding.sandbox.local.agent_launch import agent_argv, agent_limits
    from coolcoding.settings import Settings

    limits = agent_limits(Settings(environment="test"))  # type: ignore[call-arg]
    assert set(limits) == {f.name for f in fields(AgentLimits)}
    argv = agent_argv("/usr/bin/python3", 5, 6, {"max_frame_bytes": 4096})
    assert argv == [
        "/usr/bin/python3", "-S", "-m", "coolcoding.agent",
        "--socket", "/run/coolcoding/agent.sock", "--workspace", "/workspace",
        "--secret-fd", "5", "--ready-fd", "6", "--max-frame-bytes", "4096",
    ]  # fmt: skip
