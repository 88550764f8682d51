"""One settings object for the whole platform; nothing else reads ``os.environ``.

Every user-facing limit lives here with its default and is documented in README.md
(environment variable = ``COOLCODING_`` + the field name in upper case).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Platform configuration, read from ``COOLCODING_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="COOLCODING_", extra="ignore")

    # --- deployment -----------------------------------------------------------------------
    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Field(
        default=Path("./data"), description="Where the embedded DB and sandbox workspaces live"
    )
    database_url: str = Field(
        default="", description="SQLAlchemy async URL; empty = SQLite in data_dir"
    )
    redis_url: str = Field(
        default="", description="Optional Redis for cross-replica events and rate limits"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to open WebSockets/cookies; empty = same host as the request",
    )
    static_dir: Path | None = Field(
        default=None, description="Built SPA; default: the packaged bundle"
    )
    db_pool_size: int = Field(
        default=40,
        description="PostgreSQL connections kept open per replica (and as many again on bursts); "
        "below the number of concurrent requests, each burst pays new connections",
    )
    ws_compression: bool = Field(
        default=False,
        description="permessage-deflate on WebSockets: saves bandwidth on slow links, but costs "
        "more CPU than it saves on a LAN (terminal throughput drops several-fold)",
    )
    access_log: bool = Field(default=False, description="Log every HTTP request (costs ~10% CPU)")

    # --- accounts ---------------------------------------------------------------------------
    session_cookie_name: str = "cc_session"
    login_ttl_hours: int = 24 * 14
    cookie_secure: bool = False
    login_rate_limit: int = Field(
        default=10, description="Failed logins allowed per window, per account and per IP"
    )
    login_rate_window_s: int = 300
    password_min_length: int = 8
    auth_cache_ttl_s: float = Field(
        default=2.0,
        description="Seconds a resolved login token, and a session's owner, are cached in-process "
        "(0 = off); a logout or a session delete on another replica takes at most this long to "
        "apply there",
    )

    # --- workspace limits ------------------------------------------------------------------------
    max_file_bytes: int = Field(default=5 * MiB, description="Largest single file")
    max_workspace_bytes: int = Field(
        default=200 * MiB, description="Quota: total bytes per workspace"
    )
    max_workspace_items: int = Field(
        default=10_000, description="Quota: files + folders per workspace"
    )
    max_name_length: int = 255
    max_path_length: int = 1024
    max_depth: int = 64

    # --- sandboxes ----------------------------------------------------------------------------
    runtime: Literal["local", "kubernetes"] = "local"
    sandbox_memory_mb: int = 512
    sandbox_pids: int = 256
    sandbox_cpus: float = 1.0
    sandbox_network: bool = Field(
        default=False, description="Default for new sessions: allow network"
    )
    sandbox_idle_timeout_s: int = 30 * 60
    sandbox_uid_base: int = 200_000
    sandbox_uid_count: int = 60_000
    sandbox_start_timeout_s: float = 10.0
    # local runtime (sandbox/local/): bubblewrap + cgroups. A root server runs each session as
    # uid sandbox_uid_base + hash(uuid) % sandbox_uid_count; a non-root server runs sandboxes as
    # its own uid and needs a delegated cgroup subtree.
    sandbox_bwrap_path: str = "/usr/bin/bwrap"
    sandbox_cgroup_version: Literal["auto", "v1", "v2"] = "auto"
    sandbox_cgroup_v2_root: Path | None = Field(
        default=None, description="cgroup v2: delegated subtree to use; default the v2 mount"
    )
    sandbox_tmp_bytes: int = Field(default=64 * MiB, description="Size of /tmp and of $HOME each")
    sandbox_seccomp: bool = Field(
        default=True,
        description="Install the seccomp filter (sandbox/local/seccomp.py) in every sandboxed "
        "process: keyrings, BPF, perf, userfaultfd, io_uring, mounts, modules... refused",
    )
    sandbox_disk_check_interval_s: float = Field(
        default=5.0, description="How often running sandboxes' workspaces are measured (quota)"
    )
    sandbox_pool_size: int = Field(
        default=-1,
        description="Warm ephemeral sandboxes (judge jobs) kept pre-started, their first exec "
        "waiting in a zygote; -1 = 2 per CPU core, 0 = no pool",
    )
    sandbox_cgroup_parent: str = Field(
        default="coolcoding",
        description="Name of this server's cgroup subtree; two servers on one host need different names "
        "(orphan cleanup at start-up removes everything under it)",
    )

    # --- terminals ------------------------------------------------------------------------------
    terminal_max_per_session: int = 8
    terminal_scrollback_bytes: int = 256 * 1024
    terminal_reattach_grace_s: int = 300
    terminal_command_output_bytes: int = 16 * 1024

    # --- sync -----------------------------------------------------------------------------------
    sync_debounce_ms: int = 50
    sync_files_per_s: int = Field(
        default=5_000, description="Per session: sandbox entries synced per second at most"
    )
    sync_batch_files: int = Field(
        default=200, description="Entries read and stored per step (the event loop yields between)"
    )
    sync_rescan_interval_s: float = Field(
        default=2.0,
        description="Per session: at most one full rescan (after a backlog) per interval",
    )
    sync_backlog_max: int = Field(
        default=20_000,
        description="Changed paths queued per session beyond which sync rescans by content hash",
    )

    # --- execution / judge ------------------------------------------------------------------------
    exec_workers: int = Field(default=0, description="Judge workers; 0 = one per CPU core")
    exec_queue_max: int = 5_000
    exec_default_cpu_s: float = 5.0
    exec_default_wall_s: float = 10.0
    exec_default_memory_mb: int = 256
    exec_default_pids: int = 64
    exec_default_output_bytes: int = 1 * MiB
    exec_max_cpu_s: float = 30.0
    exec_max_wall_s: float = 60.0
    exec_max_memory_mb: int = 2048
    exec_max_pids: int = 256
    exec_max_output_bytes: int = 16 * MiB
    exec_max_source_bytes: int = 1 * MiB
    exec_max_stdin_bytes: int = 16 * MiB
    exec_rate_limit_per_minute: int = 600
    exec_compile_cpu_s: float = Field(default=20.0, description="Compile step: CPU time limit")
    exec_compile_wall_s: float = 40.0
    exec_compile_memory_mb: int = 1024
    exec_compile_pids: int = 64
    exec_compile_output_bytes: int = 64 * 1024
    exec_compile_cache_mb: int = Field(
        default=256, description="In-memory cache of compiled programs (per server), 0 = off"
    )
    exec_batch_max: int = Field(default=1000, description="Jobs per POST /api/executions/batch")
    exec_wait_max_s: float = Field(
        default=120.0, description="?wait=true answers 202 instead when a job takes longer"
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and not self.cookie_secure:
            raise ValueError("COOLCODING_COOKIE_SECURE must be true in production (HTTPS cookies)")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'coolcoding.db').resolve()}"

    @property
    def workspaces_dir(self) -> Path:
        return (self.data_dir / "workspaces").resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
