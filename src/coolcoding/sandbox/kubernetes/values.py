"""The deployment's values file (``coolcoding deploy render -f values.yaml``), typed.

Unknown keys are refused (a typo must not silently render defaults). Secrets are never values:
they go in the ``coolcoding-secrets`` Secret (``coolcoding deploy secrets``), never in a file
that is committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from coolcoding.sandbox.kubernetes.objects import DEFAULT_BLOCKED_CIDRS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    cpu_limit: str = "2"
    memory_limit: str = "2Gi"


class Autoscaling(_Strict):
    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=10, ge=1)
    cpu_percent: int = Field(default=70, ge=1, le=100)
    memory_percent: int = Field(default=80, ge=1, le=100)
    scale_down_stabilization_s: int = Field(default=300, ge=0)


class Database(_Strict):
    # in-cluster: a PostgreSQL StatefulSet here; external: COOLCODING_DATABASE_URL in the Secret
    mode: Literal["in-cluster", "external"] = "in-cluster"
    image: str = "docker.io/library/postgres:16-bookworm"
    storage: str = "10Gi"
    storage_class: str = ""
    # CIDRs of an external database: sandboxes with network must not reach it
    cidrs: list[str] = Field(default_factory=list)


class Redis(_Strict):
    mode: Literal["in-cluster", "external", "none"] = "in-cluster"
    image: str = "docker.io/library/redis:7-bookworm"
    cidrs: list[str] = Field(default_factory=list)


class Sandboxes(_Strict):
    image: str = "ghcr.io/coolcoding/sandbox:0.1.0"
    workspace_size: str = "1Gi"
    storage_class: str = ""
    runtime_class: str = ""  # gvisor / kata when the cluster has them
    warm_pool_size: int = Field(default=0, ge=0)
    memory_mb: int = 512
    cpus: float = 1.0
    agent_port: int = 7777
    blocked_cidrs: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_CIDRS))
    dns_namespace: str = "kube-system"


class Values(_Strict):
    namespace: str = "coding-platform"
    image: str = "ghcr.io/coolcoding/api:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    service_type: Literal["LoadBalancer", "ClusterIP", "NodePort"] = "LoadBalancer"
    environment: Literal["development", "production"] = "production"
    public_origins: list[str] = Field(default_factory=list)
    cookie_secure: bool = True
    resources: Resources = Resources()
    autoscaling: Autoscaling = Autoscaling()
    database: Database = Database()
    redis: Redis = Redis()
    sandboxes: Sandboxes = Sandboxes()
    # Further COOLCODING_* settings for the ConfigMap (README's settings table), e.g.
    # {"COOLCODING_SANDBOX_IDLE_TIMEOUT_S": "900"}
    settings: dict[str, str] = Field(default_factory=dict)


def load_values(path: Path | None) -> Values:
    if path is None:
        return Values()
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the values file must be a mapping")
    return Values.model_validate(data)
