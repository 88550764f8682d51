"""Representative inputs of the golden tests (shared by the tests and their regeneration)."""

from __future__ import annotations

from typing import Any

from coolcoding.sandbox.kubernetes import objects as o
from coolcoding.settings import Settings

UUID = "0b9f6a52-3c2e-4d7a-9a51-7f2f0c1d2e3f"


def pod_config(**overrides: Any) -> o.PodConfig:
    return o.PodConfig.from_settings(Settings(**overrides))


def golden_objects() -> dict[str, dict[str, Any]]:
    """File name -> object, for every golden case."""
    default = pod_config()
    gvisor = pod_config(k8s_runtime_class="gvisor", k8s_storage_class="fast-ssd",
                        k8s_sandbox_image="registry.example.com/sandbox:1", k8s_agent_port=9000)  # fmt: skip
    session = o.PodRequest(name=o.pod_name(UUID), session_uuid=UUID, claim=o.pvc_name(UUID))
    networked = o.PodRequest(name=o.pod_name(UUID), session_uuid=UUID, claim=o.pvc_name(UUID),
                             network=True, cpus=2.0, memory_mb=1024)  # fmt: skip
    warm = o.PodRequest(name="exec-warm-abc123", session_uuid=None, claim="workspace-warm-abc123",
                        warm=True)  # fmt: skip
    judge = o.PodRequest(name="judge-abc123", session_uuid=None, claim=None, kind="ephemeral",
                         cpus=0.5, memory_mb=256)  # fmt: skip
    cases: dict[str, Any] = {
        "pod-session.yaml": o.make_pod(default, session),
        "pod-network-gvisor.yaml": o.make_pod(gvisor, networked),
        "pod-warm.yaml": o.make_pod(default, warm),
        "pod-judge.yaml": o.make_pod(default, judge),
        "pvc-session.yaml": o.make_pvc(default, o.pvc_name(UUID), UUID),
        "pvc-storage-class.yaml": o.make_pvc(gvisor, "workspace-warm-abc123", None, warm=True),
    }
    policies = o.make_network_policies(o.NetworkConfig(namespace="coding-platform"))
    cases["networkpolicy-isolation.yaml"] = policies[0]
    cases["networkpolicy-internet.yaml"] = policies[1]
    return {name: obj.to_dict() for name, obj in cases.items()}
