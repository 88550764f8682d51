"""Small pieces every deployment manifest shares: metadata, restricted security contexts, names."""

from __future__ import annotations

from typing import Any, Protocol

from lightkube.models.core_v1 import (
    Capabilities,
    PodSecurityContext,
    SeccompProfile,
    SecurityContext,
)
from lightkube.models.meta_v1 import ObjectMeta

from coolcoding.sandbox.kubernetes.objects import PART_OF
from coolcoding.sandbox.kubernetes.values import Values


class Manifest(Protocol):
    """Any lightkube object: what rendering needs of it."""

    def to_dict(self) -> dict[str, Any]: ...


API = "coolcoding-api"
CONFIG = "coolcoding-config"
SECRETS = "coolcoding-secrets"


def meta(v: Values, name: str, **labels: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=v.namespace, labels={PART_OF: "coolcoding", **labels})


def restricted_security(uid: int) -> tuple[PodSecurityContext, SecurityContext]:
    """Pod and container security contexts that pass the restricted Pod Security Standard."""
    pod = PodSecurityContext(runAsNonRoot=True, runAsUser=uid, runAsGroup=uid, fsGroup=uid,
                             seccompProfile=SeccompProfile(type="RuntimeDefault"))  # fmt: skip
    container = SecurityContext(
        allowPrivilegeEscalation=False, readOnlyRootFilesystem=True, runAsNonRoot=True,
        capabilities=Capabilities(drop=["ALL"]), seccompProfile=SeccompProfile(type="RuntimeDefault"),
    )  # fmt: skip
    return pod, container
