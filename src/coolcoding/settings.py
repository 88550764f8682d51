"""One settings object for the whole platform; nothing else reads ``os.environ``.

Every user-facing limit lives here with its default and is documented in README.md
(environment variable = ``COOLCODING_`` + the field name in upper case).
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network
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
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of `coolcoding serve` on one port (each a replica with its "
        "own data dir <data_dir>/workers/<k>); more than 1 needs PostgreSQL and Redis",
    )
    public_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to open WebSockets/cookies; empty = same host as the request",
    )
    static_dir: Path | None = Field(
        default=None, description="Built SPA; default: the packaged bundle"
    )
    http_coalesce_writes: bool = Field(
        default=True,
        description="Send the writes of one event-loop turn (a response's head and body) in one "
        "writev: one syscall and one TCP segment instead of two per response",
    )
    http_fast_file_routes: bool = Field(
        default=True,
        description="Serve the well-formed read and save of one workspace file "
        "(GET/POST /api/workspace/{uuid}/file/{path}) without FastAPI's routing and dependency "
        "solving; same checks, answers and errors, anything else goes through FastAPI",
    )
    http_fast_exec_routes: bool = Field(
        default=True,
        description="Serve the well-formed waited judge submission (POST /api/executions?wait=true "
        "and the Judge0 POST /submissions?wait=true) without FastAPI's routing, dependency solving "
        "and response validation; same login, checks, answers and errors, anything else goes "
        "through FastAPI",
    )
    gc_young_threshold: int = Field(
        default=10_000,
        ge=0,
        description="Allocations between two young-generation garbage collections in `serve` "
        "(Python's default: 700; 0 keeps it): with ~50 requests in flight each collection walks "
        "all their live objects, so rarer collections cost less CPU",
    )
    db_pool_size: int = Field(
        default=40,
        description="PostgreSQL connections kept open per replica (and as many again on bursts); "
        "below the number of concurrent requests, each burst pays new connections",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description="SQLite: how long a statement waits for another connection's write lock "
        "before failing with 'database is locked' (503 database_unavailable); the holders of "
        "the lock then are logged with the task and statement that took it",
    )
    db_raw_hot_statements: bool = Field(
        default=True,
        description="PostgreSQL: the one-statement read and save of a file, and a judge job's "
        "one-statement writes (Database.write), go straight to asyncpg's prepared statement "
        "(db/raw.py) instead of through SQLAlchemy's execute layers; same SQL, same types; a "
        "statement PostgreSQL refused reruns through SQLAlchemy, a write whose connection was "
        "lost is never rerun",
    )
    db_sqlite_one_hop_writes: bool = Field(
        default=True,
        description="SQLite: the one-statement writes of a judge job (its INSERT, its claim, "
        "its result) run with their COMMIT in one call on a dedicated connection's thread "
        "(db/sqlite_write.py) instead of six round trips through SQLAlchemy's asyncio layer; "
        "same SQL, same stored values, same errors",
    )
    ws_compression: bool = Field(
        default=False,
        description="permessage-deflate on WebSockets: saves bandwidth on slow links, but costs "
        "more CPU than it saves on a LAN (terminal throughput drops several-fold)",
    )
    access_log: bool = Field(default=False, description="Log every HTTP request (costs ~10% CPU)")
    http_header_timeout_s: float = Field(
        default=10.0,
        description="Seconds from a connection (or the next request's first byte) to complete "
        "request headers; slower connections are closed (slowloris)",
    )
    http_body_timeout_s: float = Field(
        default=30.0, description="Seconds a request body may stall between chunks while read"
    )
    max_connections_per_ip: int = Field(
        default=256,
        description="Open connections (WebSockets included) per client address; more are refused "
        "with 503 (trusted_proxies are exempt)",
    )
    max_connections: int = Field(
        default=0,
        description="Open connections in total; 0 = the open-file limit (raised to its hard limit "
        "at start) minus 10% (at least 256) kept for the database, sandboxes and files",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses/CIDRs of reverse proxies whose X-Forwarded-For is believed; "
        "empty = the client address is always the TCP peer",
    )
    docs_enabled: bool | None = Field(
        default=None,
        description="Serve /docs, /redoc and /api/openapi.json; default: on except in production",
    )

    # --- accounts ---------------------------------------------------------------------------
    session_cookie_name: str = "cc_session"
    login_ttl_hours: int = 24 * 14
    cookie_secure: bool = False
    login_rate_limit: int = Field(
        default=10, description="Failed logins allowed per window from one client IP (then 429)"
    )
    login_rate_window_s: int = 300
    login_account_free_failures: int = Field(
        default=5,
        description="Failed logins on one account before it is slowed down: each further "
        "attempt waits login_account_delay_s, doubled per failure (429 with Retry-After); a "
        "correct password from a known device (cookie of an earlier login) is never slowed",
    )
    login_account_delay_s: float = 1.0
    login_account_delay_max_s: float = 300.0
    login_account_window_s: int = Field(
        default=3600, description="Failed logins older than this no longer count for the delay"
    )
    register_rate_limit: int = Field(
        default=10, description="Registrations allowed per window from one client IP (then 429)"
    )
    register_rate_window_s: int = 3600
    password_min_length: int = 8
    auth_cache_ttl_s: float = Field(
        default=2.0,
        description="Seconds a resolved login token, an API token (Judge0), and a session's owner "
        "are cached in-process (0 = off; concurrent lookups of one token share one query); a "
        "logout, a token's revocation, an account's or a session's deletion applies at once on "
        "its own replica, and reaches the other replicas through "
        "the event bus (Redis; within this TTL if a replica misses the message)",
    )

    # --- workspace limits ------------------------------------------------------------------------
    max_file_bytes: int = Field(default=5 * MiB, description="Largest single file")
    max_workspace_bytes: int = Field(
        default=200 * MiB, description="Quota: total bytes per workspace"
    )
    max_workspace_items: int = Field(
        default=10_000, description="Quota: files + folders per workspace"
    )
    # --- live co-editing (collab/) ----------------------------------------------------------------
    collab_max_update_bytes: int = Field(
        default=256 * 1024,
        description="Largest single Yjs update (or awareness update) a client may send",
    )
    collab_max_doc_bytes: int = Field(
        default=2 * MiB,
        description="Largest file that can be co-edited (and largest text a document may grow to)",
    )
    collab_save_debounce_ms: int = Field(
        default=300, description="A co-edited document is saved this long after its last change"
    )
    collab_resync_interval_s: float = Field(
        default=1.0,
        description="Replicas exchange each open document's state vector this often (repairs an "
        "update lost on the event bus) and renew which replica saves it",
    )
    collab_state_ttl_s: int = Field(
        default=86_400,
        description="Seconds a document's saved base stays in Redis after its last save",
    )
    collab_flush_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a replica waits for another replica (the saver) to answer a "
        "co-editing flush (Run saves first) before forgetting it; the browser waits as long",
    )
    collab_max_docs_per_connection: int = Field(
        default=32, description="Files one co-editing WebSocket may have open at once"
    )
    collab_test_hold_after_save: str = Field(
        default="",
        description="Tests only (refused unless COOLCODING_ENVIRONMENT=test): a file the "
        "co-editing saver creates right after it saved a document to the DB, before it records "
        "the saved base in Redis, then waits there forever (a fault test SIGKILLs it there)",
    )
    collab_send_queue: int = Field(
        default=2000,
        description="Frames queued for a slow co-editing client before it is disconnected "
        "(it resyncs on reconnect)",
    )
    max_name_length: int = 255
    max_path_length: int = 1024
    max_depth: int = 64
    max_sessions_per_user: int = Field(
        default=100, description="Sessions (workspaces) one user may own; 0 = no cap"
    )

    # --- history, snapshots, trash (services/history.py, snapshots.py) -----------------------
    history_enabled: bool = Field(default=True, description="Keep file versions of every change")
    history_single_statement_save: bool = Field(
        default=True,
        description="PostgreSQL: save an edit and its version in one statement (false: the "
        "general locked transaction, kept for comparison in bench/bench_history.py)",
    )
    history_deferred_save: bool = Field(
        default=True,
        description="PostgreSQL: a save writes its version's content to a row of its own (no "
        "shared row locked, no delta computed); a background task compacts it into the shared "
        "content store (deltas, reference counts) once the version is closed (false: the save "
        "does that work itself)",
    )
    history_compact_interval_s: float = Field(
        default=2.0,
        ge=0,
        description="How often the background task compacts closed versions' contents into the "
        "shared store (0 = never: only for tests and benchmarks)",
    )
    history_compact_batch: int = Field(
        default=500, ge=1, description="Versions compacted per pass of that task at most"
    )
    history_max_versions: int = Field(
        default=50, ge=1, description="Versions kept per file (the oldest beyond are purged)"
    )
    history_coalesce_s: float = Field(
        default=10.0,
        ge=0,
        description="Changes of a file from one source and author within this many seconds of "
        "its last version's start are merged into that version (0 = every change a version)",
    )
    history_delta_max_depth: int = Field(
        default=32, ge=0, description="Longest chain of deltas before a full (zlib) copy"
    )
    snapshot_before_delete_min_files: int = Field(
        default=20, description="Deleting a folder with more files first takes a snapshot"
    )
    snapshot_interval_s: float = Field(
        default=1800,
        description="Scheduled snapshot of a workspace changed since its last snapshot (0 = off)",
    )
    snapshot_max_auto: int = Field(
        default=20, description="Automatic and scheduled snapshots kept per workspace"
    )
    snapshot_max_age_days: float = Field(
        default=30, description="Automatic and scheduled snapshots older than this are purged"
    )
    trash_retention_days: float = Field(
        default=30, description="Days a deleted file, folder or workspace stays restorable"
    )
    history_purge_interval_s: float = Field(
        default=600, description="How often the background job purges the trash and old snapshots"
    )

    # --- files in and out, search (docs/API.md "IDE") ------------------------------------------
    max_zip_upload_bytes: int = Field(
        default=100 * MiB,
        description="Largest zip archive accepted by an import (the compressed upload)",
    )
    max_zip_expanded_bytes: int = Field(
        default=200 * MiB,
        description="Most bytes an imported zip may expand to, by its declared and by its actual "
        "sizes (zip bombs); the workspace quota applies too",
    )
    max_zip_entries: int = Field(default=10_000, description="Most entries in an imported zip")
    zip_export_compress_level: int = Field(
        default=1,
        ge=0,
        le=9,
        description="Deflate level of zip exports for text files (0 = store everything); binary "
        "files are always stored",
    )
    search_max_results: int = Field(
        default=2_000,
        ge=1,
        description="Most matching lines one search answer (page) returns: the largest "
        "max_results a request may ask for",
    )
    search_page_results: int = Field(
        default=500,
        ge=1,
        description="Matching lines of a search page when the request gives no max_results "
        "(at most search_max_results); the answer's next cursor fetches more",
    )
    search_max_files: int = Field(
        default=500,
        ge=1,
        description="Most candidate files a search takes from the index; a term found in more "
        "walks the workspace in path order instead (results are exact either way)",
    )
    search_defer_refresh_min_files: int = Field(
        default=500,
        ge=0,
        description="A snapshot restore rewriting at least this many files refreshes their "
        "search-index entries right after its commit instead of inside it (search reads those "
        "files until then and stays exact); 0 = always inside",
    )
    search_max_query_length: int = Field(
        default=500,
        ge=1,
        le=500,
        description="Longest search text or regular expression (at most 500: the URL's limit)",
    )

    # --- sandboxes ----------------------------------------------------------------------------
    runtime: Literal["local", "kubernetes"] = "local"
    sandbox_memory_mb: int = 512
    sandbox_pids: int = 256
    sandbox_cpus: float = 1.0
    sandbox_network: bool = Field(
        default=False, description="Default for new sessions: allow network"
    )
    sandbox_network_allow: list[IPv4Network] = Field(
        default_factory=list,
        description="IPv4 networks a network-enabled sandbox may reach although they are blocked "
        "(private ranges, link-local, the host's own addresses and networks), as a JSON list "
        'of CIDRs, e.g. ["10.20.0.0/16"]',
    )
    sandbox_slirp4netns_path: str = Field(
        default="/usr/bin/slirp4netns",
        description="User-mode NAT of network-enabled sandboxes (Debian: slirp4netns)",
    )
    sandbox_etc_root: Path = Field(
        default=Path("/dev/shm"),
        description="A tmpfs where each sandbox's generated /etc is made (a private directory "
        "per server): its path shows in the sandbox's /proc/self/mountinfo, the data dir's does not",
    )
    sandbox_idle_timeout_s: int = 30 * 60
    lease_ttl_s: float = Field(
        default=15.0,
        gt=0,
        description="Replicas: how long a session or replica lease lives without renewal; a dead "
        "replica's sessions are taken over (and its jobs recovered) this long after it died",
    )
    lease_renew_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Replicas: how often a replica renews its leases (well below lease_ttl_s)",
    )
    replica_address: str = Field(
        default="",
        description="Replicas: this replica's own http://host:port, stored with its leases so "
        "that operators (and later a proxy) can see which replica holds a session",
    )
    max_running_sandboxes_per_user: int = Field(
        default=4, description="Session sandboxes of one user running at once; 0 = no cap"
    )
    sandbox_max_running: int = Field(
        default=64,
        description="Session sandboxes running at once on this server, 0 = no cap; size it by "
        "memory (see README, scale) and pids; sessions take no inotify instance of the server's "
        "uid (each agent watches with one of its sandbox uid's)",
    )
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
    sandbox_disk_quota: Literal["image", "measured"] = Field(
        default="image",
        description="How the workspace quota is enforced: image = the kernel (a filesystem image "
        "per workspace, loop-mounted: needs root and loop devices; writes beyond it fail with "
        "ENOSPC); measured = measured every sandbox_disk_check_interval_s, can be overshot",
    )
    sandbox_disk_check_interval_s: float = Field(
        default=5.0,
        description="sandbox_disk_quota=measured: how often running sandboxes' workspaces are "
        "measured",
    )
    sandbox_pool_size: int = Field(
        default=-1,
        description="Warm ephemeral sandboxes (judge jobs) kept pre-started, their first exec "
        "waiting in a zygote; -1 = 2 per CPU core, 0 = no pool",
    )
    sandbox_zygote: Literal["auto", "c", "bash"] = Field(
        default="auto",
        description="The pooled sandboxes' zygote (sandbox/local/zygote.py): c = a small C "
        "program (zygote.c, built with cc at the first pooled start and cached under "
        "<data_dir>/sandbox-state/zygote-cache), ~2 ms less CPU per judge job than bash and "
        "env(1); bash = the bash script; auto = c when it builds and passes its self-test, else "
        "bash (the log says why; also when a C zygote dies in a sandbox where bash starts); c "
        "fails the start-up instead",
    )
    sandbox_inline_write_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Workspace writes of at most this many bytes in all (and 16 files), e.g. a "
        "judge job's source, run on the event loop instead of a worker thread (a thread hop "
        "costs more than such a write); 0 = always in a thread",
    )
    sandbox_inline_usage_entries: int = Field(
        default=64,
        ge=0,
        description="A workspace of at most this many entries (a judge job's) is measured "
        "after each exec (sandbox_disk_quota=measured), and a reused judge sandbox with no "
        "process left is wiped, on the event loop; a bigger one in a worker thread; 0 = always "
        "in a thread",
    )
    sandbox_judge_reuse: bool = Field(
        default=True,
        description="A judge job's sandbox is wiped after the job (every process killed "
        "cgroup-wide, its leaf cgroups removed, its workspace emptied and reset) and runs the "
        "next job of the same user in a new bwrap, instead of a new sandbox (dirs, /etc, "
        "cgroups) per job; a sandbox whose wipe fails or times out is destroyed. false = every "
        "job gets a never-used sandbox",
    )
    sandbox_judge_keep_netns: bool = Field(
        default=True,
        description="A judge sandbox (no network) gets its loopback-only network namespace "
        "once, made by the server, and keeps it for every job it runs (with sandbox_judge_reuse: "
        "its user's next jobs; every process is killed between two jobs, so no socket is left): "
        "a new network namespace per job cost ~1.7 ms of CPU (bwrap's set-up and the kernel's "
        "clean-up afterwards). false = each job's bwrap makes a new one",
    )
    sandbox_spawn_ns_test_hold: str = Field(
        default="",
        description="Tests only (refused unless COOLCODING_ENVIRONMENT=test): a file the spawn "
        "mount namespace's helper writes its pid to once it made the namespace (unshare, mounts "
        "detached) and before it answers, then waits there forever (a fault test SIGKILLs it)",
    )
    sandbox_spawn_mount_ns: bool = Field(
        default=True,
        description="Judge sandboxes' bwrap starts from a private copy of the server's mount "
        "namespace holding only the mounts it needs (/, /usr, /proc, /dev, the data dir's), "
        "made once at start-up (sandbox/local/spawnns.py): every other host mount (/sys, "
        "session workspace images) no longer costs each judge job's bwrap; same sandbox view. "
        "Root only; false = the server's own namespace",
    )
    sandbox_judge_reuse_size: int = Field(
        default=-1,
        description="sandbox_judge_reuse: wiped judge sandboxes kept in all users (the least "
        "recently used user's go first); -1 = twice the number of judge workers "
        "(exec_workers), 0 = no reuse",
    )
    sandbox_judge_reuse_wipe_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="sandbox_judge_reuse: a wipe (kill, cgroup leaves, workspace, new zygote) "
        "that takes longer destroys the sandbox instead; a job waits at most this long for its "
        "user's wipe in progress",
    )
    sandbox_session_pool_size: int = Field(
        default=2,
        ge=0,
        description="Sandboxes of new sessions kept pre-started (an empty workspace of the "
        "default quota, its agent ready; no network): a new session is created with one's uuid "
        "and binds it, so its start is a bind. Each costs an idle sandbox's memory (~13 MB) and "
        "disk image; 0 = no pool (every first start is cold)",
    )
    sandbox_cgroup_parent: str = Field(
        default="coolcoding",
        description="Name of the cgroup subtree sandboxes live in; servers on one host may share "
        "it: each keeps its groups under <parent>/<server id> (the id is kept in "
        "<data_dir>/server-id) and its orphan cleanup touches only its own",
    )

    # --- kubernetes runtime (sandbox/kubernetes/, COOLCODING_RUNTIME=kubernetes) ---------------
    k8s_namespace: str = Field(
        default="coding-platform", description="Namespace of the session pods and volumes"
    )
    k8s_kubeconfig: str = Field(
        default="",
        description="Kubeconfig file; empty = the in-cluster service account, else $KUBECONFIG",
    )
    k8s_sandbox_image: str = Field(
        default="ghcr.io/coolcoding/sandbox:0.1.0",
        description="Image of the session pods (deploy/images/sandbox.Containerfile)",
    )
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    k8s_workspace_size: str = Field(
        default="1Gi", description="Size of each session's PersistentVolumeClaim workspace-{uuid}"
    )
    k8s_storage_class: str = Field(
        default="", description="StorageClass of the workspace volumes; empty = the default"
    )
    k8s_runtime_class: str = Field(
        default="",
        description="RuntimeClass of session pods (e.g. gvisor, kata); empty = the node's default",
    )
    k8s_agent_port: int = Field(default=7777, description="TCP port the agent listens on in a pod")
    k8s_agent_key: str = Field(
        default="",
        description="Shared by every API replica (a Kubernetes Secret): each pod's agent secret is "
        "HMAC(key, pod uid), so any replica can reach any pod; at least 32 characters",
    )
    k8s_sandbox_uid: int = Field(default=1000, description="Non-root uid/gid of the session pods")
    k8s_request_ratio: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Pod resource requests = limits (sandbox_cpus, sandbox_memory_mb) x this ratio",
    )
    k8s_warm_pool_size: int = Field(
        default=0,
        ge=0,
        description="Pre-started session pods (each with a fresh volume) a first session start "
        "or a judge job claims instead of waiting for a cold pod start",
    )
    k8s_pod_start_timeout_s: float = Field(
        default=180.0, description="A session pod not running after this long fails the start"
    )
    k8s_ephemeral_storage_mb: int = Field(
        default=512,
        description="Limit of a pod's node-local scratch (/tmp, $HOME, logs), evicted beyond",
    )

    # --- terminals ------------------------------------------------------------------------------
    terminal_max_per_session: int = 8
    terminal_max_per_user: int = Field(
        default=16, description="Live terminals of one user, all sessions together; 0 = no cap"
    )
    terminal_scrollback_bytes: int = 256 * 1024
    terminal_reattach_grace_s: int = 300
    terminal_command_output_bytes: int = 16 * 1024

    # --- sandbox agent (docs/AGENT_PROTOCOL.md) ---------------------------------------------------
    agent_max_frame_bytes: int = Field(default=1024 * 1024, description="Largest protocol frame")
    agent_max_connections: int = 64
    agent_max_list_entries: int = 100_000
    agent_exec_timeout_s: float = Field(
        default=7 * 86400.0, description="Longest exec the agent accepts (a session run's wall)"
    )
    agent_exec_output_bytes: int = 16 * 1024 * 1024
    agent_start_timeout_s: float = 10.0
    sandbox_keep_on_shutdown: bool = Field(
        default=True,
        description="A server shutdown (SIGTERM) leaves session sandboxes and their shells "
        "running for the next server process of this data dir; false stops them",
    )
    agent_connect_timeout_s: float = Field(
        default=2.0, description="Connecting to a sandbox's agent (at start-up: is it alive?)"
    )
    sandbox_recovery_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="At start-up, how many sandboxes a dead server process left (nobody "
        "reattaches them) have their files recovered into the database at once (each starts "
        "the sandbox, reads its files and stops it)",
    )

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
    exec_workers: int = Field(default=0, description="Judge workers; 0 = two per CPU core")
    exec_queue_max: int = 5_000
    exec_queue_max_per_user: int = Field(
        default=1000,
        description="Judge jobs one user may have waiting (429 beyond); 0 = only exec_queue_max",
    )
    exec_max_running_per_user: int = Field(
        default=0,
        description="Judge jobs of one user running at once; 0 = no cap (a user alone may use "
        "every worker; another user's job still takes the next free worker: fair share)",
    )
    session_run_wall_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="Wall-time limit of a Run in a session (a server or a long job runs until "
        "stopped; the judge keeps exec_default_wall_s)",
    )
    session_run_output_bytes: int = Field(
        default=16 * MiB,
        gt=0,
        description="Output a Run in a session may write before it is stopped",
    )
    session_run_stdin_bytes: int = Field(
        default=64 * 1024, gt=0, description="Largest one input sent to a running program"
    )
    session_run_figure_bytes: int = Field(
        default=8 * MiB, gt=0, description="Largest figure (PNG) a run may show inline"
    )
    package_cache_dir: str = Field(
        default="",
        description="A folder whose pip/ wheelhouse and npm/ store (tarballs by SHA-512, e.g. "
        "`npm cache add PKG --cache DIR/npm`) are shared read-only with every session (pip and "
        "npm look there first); empty = none",
    )
    package_cache_promote_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="How often the host copies the verified npm downloads of running sandboxes "
        "into package_cache_dir's npm/ store (also when a sandbox stops); 0 = only at stop",
    )
    package_cache_max_blob_bytes: int = Field(
        default=256 * MiB,
        gt=0,
        description="Largest npm tarball promoted from a session into the shared store",
    )
    package_cache_max_promote_bytes: int = Field(
        default=512 * MiB,
        gt=0,
        description="Most bytes promoted from one sandbox into the shared npm store at a time",
    )
    package_cache_pip_user_quota_bytes: int = Field(
        default=1024 * MiB,
        ge=0,
        description="Most bytes of each user's own wheelhouse (package_cache_dir/pip-users/ID: "
        "their sessions' pip downloads, seen by their sessions only); 0 = not kept",
    )
    preview_max_request_bytes: int = Field(
        default=32 * MiB, gt=0, description="Largest request body relayed to a previewed program"
    )
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
    exec_watchdog_margin_s: float = Field(
        default=30.0,
        gt=0,
        description="A judge job still running this long after its wall limits (compile + run) "
        "is failed as internal_error and its worker freed",
    )
    exec_max_testcases: int = Field(default=1000, ge=1, description="Test cases per job")
    exec_max_testcases_bytes: int = Field(
        default=32 * MiB, description="All test cases of a job together (stdin + expected)"
    )
    exec_checker_cpu_s: float = Field(default=5.0, description="A checker program's CPU limit")
    exec_checker_wall_s: float = Field(default=10.0, description="A checker program's wall limit")
    exec_checker_memory_mb: int = Field(default=256, description="A checker program's memory")
    exec_interactor_grace_s: float = Field(
        default=2.0,
        gt=0,
        description="An interactor's wall limit past the submission's (a deadlock is then the "
        "submission's time limit)",
    )
    exec_deps_max: int = Field(default=20, description="Packages per job's `dependencies`")
    exec_deps_max_mb: int = Field(
        default=200, description="Installed size of one job's dependency set (MiB)"
    )
    exec_deps_cache_mb: int = Field(
        default=2048, description="Dependency cache on disk (MiB); least recently used go first"
    )
    exec_deps_install_timeout_s: float = Field(
        default=120.0, description="Wall limit of one dependency installation"
    )
    exec_deps_memory_mb: int = Field(default=1024, description="Memory of the install sandbox")
    exec_deps_pip_index_url: str | None = Field(
        default=None, description="pip's index for dependencies (None: pip's default, PyPI)"
    )
    exec_deps_npm_registry: str | None = Field(
        default=None, description="npm's registry for dependencies (None: npm's default)"
    )
    exec_deps_wheelhouse: Path | None = Field(
        default=None,
        description="A local directory of wheels/sdists/npm tarballs: installs use only it, "
        "offline (no network sandbox)",
    )
    judge0_enabled: bool = Field(default=True, description="The Judge0-compatible API")
    judge0_prefix: str = Field(default="/judge0", pattern=r"^(/[A-Za-z0-9_-]+)+$",
                               description="Where the Judge0-compatible API is mounted")  # fmt: skip
    judge0_callback_private: bool = Field(
        default=False, description="Allow callback_url on loopback/private addresses"
    )
    judge0_callback_tries: int = Field(default=3, ge=1, le=20, description="Callback PUT tries")
    judge0_callback_timeout_s: float = Field(default=5.0, gt=0, description="Per callback try")
    judge0_callback_backoff_s: float = Field(
        default=1.0, ge=0, description="Wait before the 2nd callback try, doubled after each"
    )
    judge0_callback_concurrency: int = Field(
        default=16, ge=1, description="Callback deliveries at once (per process)"
    )
    api_tokens_max_per_user: int = Field(default=20, ge=1, description="API tokens per user")
    share_cache_ttl_s: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a user's role in a session is cached per replica (0 = off); a "
        "revocation or role change also invalidates every replica's entry over the event bus",
    )
    share_max_collaborators: int = Field(
        default=100, ge=1, description="Collaborators (invited or accepted) per session"
    )
    public_link_max_per_session: int = Field(
        default=20, ge=1, description="Public links (not revoked) per session"
    )
    public_link_rate_limit_per_minute: int = Field(
        default=300,
        ge=1,
        description="Requests per minute to public links, per client IP (429 beyond)",
    )
    public_link_max_file_bytes: int = Field(
        default=2 * MiB, ge=1, description="Largest file a public link serves (413 beyond)"
    )
    public_link_max_run_output_chars: int = Field(
        default=64 * 1024, ge=0, description="The last run's output shown on a public link"
    )
    exec_queue: Literal["memory", "database"] = Field(
        default="memory",
        description="Judge queue: memory (in-process workers) or database (PostgreSQL FOR UPDATE "
        "SKIP LOCKED; workers in this server and in `coolcoding worker` processes)",
    )
    exec_embedded_worker: bool = Field(
        default=True, description="exec_queue=database: this server runs exec_workers too"
    )
    exec_worker_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A claimed job's lease (visibility timeout); renewed "
        "while it runs, a lapsed one puts the job back in the queue",
    )
    exec_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Tries of a job whose worker was lost or which ended in "
        "internal_error, before it is finished as internal_error",
    )
    exec_fold_claim: bool = Field(
        default=True,
        description="In-memory queue: a ?wait=true job has no claim transaction; it stays "
        "queued in the database while it runs and one UPDATE finishes it (a server killed "
        "mid-job runs it again at restart instead of failing it)",
    )
    exec_queue_poll_s: float = Field(
        default=1.0, gt=0, description="Idle database-queue workers poll this often"
    )
    exec_drain_timeout_s: float = Field(
        default=120.0,
        ge=0,
        description="On SIGTERM a worker finishes running jobs this long, "
        "then puts them back in the queue",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and not self.cookie_secure:
            raise ValueError("COOLCODING_COOKIE_SECURE must be true in production (HTTPS cookies)")
        if self.collab_test_hold_after_save and self.environment != "test":
            raise ValueError("COOLCODING_COLLAB_TEST_HOLD_AFTER_SAVE is for tests only")
        if self.sandbox_spawn_ns_test_hold and self.environment != "test":
            raise ValueError("COOLCODING_SANDBOX_SPAWN_NS_TEST_HOLD is for tests only")
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
