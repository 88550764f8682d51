"""Golden tests of the session objects (pod, volume claim, NetworkPolicies), and the properties
that make a session pod as hostile as a local sandbox, each asserted on its own."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from coolcoding.sandbox.kubernetes import objects as o
from coolcoding.sandbox.kubernetes.pss import restricted_violations
from tests.kubernetes.k8s_cases import UUID, golden_objects, pod_config

GOLDEN = Path(__file__).parent / "golden"
CASES = golden_objects()


@pytest.mark.parametrize("name", sorted(CASES))
def test_object_matches_its_golden_file(name: str) -> None:
    assert CASES[name] == yaml.safe_load((GOLDEN / name).read_text())


def test_every_golden_file_is_a_case() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if n.startswith("pod-")])
def test_session_pods_pass_the_restricted_standard(name: str) -> None:
    assert restricted_violations(CASES[name]["spec"]) == []


def test_session_pod_carries_no_cluster_data() -> None:
    spec = CASES["pod-session.yaml"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    (container,) = spec["containers"]
    assert "env" not in container and "envFrom" not in container
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # the secret reaches the agent through a FIFO in memory, never argv
    assert all("secret" not in a or a.endswith(".fifo") for a in container["command"])
    run = next(v for v in spec["volumes"] if v["name"] == "agent-run")
    assert run["emptyDir"]["medium"] == "Memory"


def test_workspace_claim_is_mounted_at_workspace_and_app() -> None:
    spec = CASES["pod-session.yaml"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/workspace"] == mounts["/app"] == "workspace"
    ws = next(v for v in spec["volumes"] if v["name"] == "workspace")
    assert ws["persistentVolumeClaim"]["claimName"] == f"workspace-{UUID}"
    assert CASES["pvc-session.yaml"]["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_resources_follow_the_session_limits() -> None:
    res = CASES["pod-network-gvisor.yaml"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["cpu"] == "2000m"
    assert res["limits"]["memory"] == "1088Mi"  # 1024 + the in-memory scratch
    assert res["requests"]["cpu"] == "500m"
    assert CASES["pod-network-gvisor.yaml"]["spec"]["runtimeClassName"] == "gvisor"
    assert "runtimeClassName" not in CASES["pod-session.yaml"]["spec"]


def test_network_label_selects_the_internet_policy() -> None:
    internet = CASES["networkpolicy-internet.yaml"]["spec"]
    selector = internet["podSelector"]["matchLabels"]
    assert CASES["pod-network-gvisor.yaml"]["metadata"]["labels"].items() >= selector.items()
    assert not CASES["pod-session.yaml"]["metadata"]["labels"].items() >= selector.items()


def test_isolation_policy_denies_all_egress_and_admits_only_the_api() -> None:
    spec = CASES["networkpolicy-isolation.yaml"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["egress"] == []
    (rule,) = spec["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": o.API_SELECTOR}}]
    assert rule["ports"] == [{"port": 7777, "protocol": "TCP"}]


@pytest.mark.parametrize("address", ["169.254.169.254", "10.96.0.1", "172.17.0.5",
                                     "192.168.1.10", "100.64.0.1", "127.0.0.1"])  # fmt: skip
def test_internet_policy_never_reaches_internal_addresses(address: str) -> None:
    from ipaddress import ip_address, ip_network

    (block,) = CASES["networkpolicy-internet.yaml"]["spec"]["egress"][0]["to"]
    excepted = [ip_network(c) for c in block["ipBlock"]["except"]]
    assert any(ip_address(address) in n for n in excepted)
    assert not any(ip_address("93.184.216.34") in n for n in excepted)


def test_extra_blocked_cidrs_are_excepted() -> None:
    (_, internet) = o.make_network_policies(
        o.NetworkConfig(namespace="x", extra_blocked_cidrs=("203.0.113.0/24",))
    )
    assert "203.0.113.0/24" in internet.to_dict()["spec"]["egress"][0]["to"][0]["ipBlock"]["except"]


def test_names_and_quantities() -> None:
    assert o.pod_name(UUID) == f"exec-{UUID}" and o.pvc_name(UUID) == f"workspace-{UUID}"
    assert o.quantity_bytes("1Gi") == 2**30 and o.quantity_bytes("500M") == 500 * 10**6
    assert o.cpu_quantity(0.0001) == "1m" and o.cpu_quantity(1.5) == "1500m"
    with pytest.raises(ValueError):
        o.quantity_bytes("1.5Gi")


def test_agent_limits_come_from_settings() -> None:
    cmd = o.agent_command(pod_config(terminal_max_per_session=3))
    assert cmd[cmd.index("--max-terminals") + 1] == "3"


# --- the checker itself must catch each violation (else the tests above prove nothing) ---------


def _pod_spec() -> dict:
    return copy.deepcopy(CASES["pod-session.yaml"]["spec"])


def _c(spec: dict) -> dict:
    return spec["containers"][0]["securityContext"]


MUTATIONS = {
    "privileged": lambda s: _c(s).update(privileged=True),
    "escalation": lambda s: _c(s).update(allowPrivilegeEscalation=True),
    "escalation unset": lambda s: _c(s).pop("allowPrivilegeEscalation"),
    "root": lambda s: (_c(s).pop("runAsNonRoot"), s["securityContext"].pop("runAsNonRoot")),
    "uid 0": lambda s: _c(s).update(runAsUser=0),
    "caps kept": lambda s: _c(s).update(capabilities={"drop": ["NET_RAW"]}),
    "caps added": lambda s: _c(s)["capabilities"].update(add=["SYS_ADMIN"]),
    "seccomp unset": lambda s: (_c(s).pop("seccompProfile"), s["securityContext"].pop("seccompProfile")),
    "unconfined": lambda s: _c(s).update(seccompProfile={"type": "Unconfined"}),
    "host network": lambda s: s.update(hostNetwork=True),
    "host pid": lambda s: s.update(hostPID=True),
    "hostPath": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "hostPort": lambda s: s["containers"][0]["ports"][0].update(hostPort=7777),
    "procMount": lambda s: _c(s).update(procMount="Unmasked"),
    "sysctl": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    "selinux": lambda s: _c(s).update(seLinuxOptions={"type": "spc_t"}),
    "apparmor": lambda s: _c(s).update(appArmorProfile={"type": "Unconfined"}),
    "init container": lambda s: s.update(initContainers=[{"name": "i", "image": "x"}]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_restricted_checker_catches(name: str) -> None:
    spec = _pod_spec()
    MUTATIONS[name](spec)
    assert restricted_violations(spec) != []
