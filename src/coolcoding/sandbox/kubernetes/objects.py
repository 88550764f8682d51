"""Pure builders of the session objects: the pod (agent as entrypoint), its workspace volume
claim, and the NetworkPolicies that confine every session pod. No I/O: golden-tested whole.

Why each field is there is said beside it. The pod must pass the ``restricted`` Pod Security
Standard (``pss.py`` checks it, and the runtime refuses to create a pod that fails the check).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lightkube.models.core_v1 import (
    Capabilities,
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource,
    PodSecurityContext,
    PodSpec,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
    Volume,
    VolumeMount,
    VolumeResourceRequirements,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.models.networking_v1 import (
    IPBlock,
    NetworkPolicyEgressRule,
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicySpec,
)
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod
from lightkube.resources.networking_v1 import NetworkPolicy

from coolcoding.settings import Settings

PART_OF = "app.kubernetes.io/part-of"
ROLE = "coolcoding.dev/role"
SESSION = "coolcoding.dev/session"
NETWORK = "coolcoding.dev/network"
POOL = "coolcoding.dev/pool"  # "warm" (unclaimed), "claimed", absent for cold pods
KIND = "coolcoding.dev/kind"  # "session" or "ephemeral" (judge jobs)
SANDBOX_SELECTOR = {PART_OF: "coolcoding", ROLE: "sandbox"}
API_SELECTOR = {"app.kubernetes.io/name": "coolcoding-api"}

WORKSPACE = "/workspace"
APP_ALIAS = "/app"  # the seeds' path for the workspace: the same volume, mounted twice
AGENT_RUN_DIR = "/run/coolcoding"
SECRET_FIFO = f"{AGENT_RUN_DIR}/secret.fifo"
CONTAINER = "sandbox"
METADATA_CIDR = "169.254.169.254/32"
# Cluster-internal and special ranges a network-enabled pod never reaches (pod, service and node
# networks of common distributions, CGNAT, link-local with the cloud metadata address).
DEFAULT_BLOCKED_CIDRS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
)


def pod_name(session_uuid: str) -> str:
    return f"exec-{session_uuid}"


def pvc_name(session_uuid: str) -> str:
    return f"workspace-{session_uuid}"


def quantity_bytes(q: str) -> int:
    """Bytes of a Kubernetes quantity such as ``1Gi``, ``500M`` or ``1073741824``."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12}  # fmt: skip
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if q.endswith(suffix) and q[: -len(suffix)].isdigit():
            return int(q[: -len(suffix)]) * factor
    if q.isdigit():
        return int(q)
    raise ValueError(f"not a byte quantity: {q!r}")


def cpu_quantity(cpus: float) -> str:
    """CPUs as millicores (``1.5`` -> ``1500m``), at least 1m."""
    return f"{max(1, math.ceil(cpus * 1000))}m"


@dataclass(frozen=True)
class PodConfig:
    """Everything a session pod depends on that is not the session itself (from ``Settings``)."""

    namespace: str
    image: str
    image_pull_policy: str = "IfNotPresent"
    uid: int = 1000
    agent_port: int = 7777
    runtime_class: str = ""
    workspace_size: str = "1Gi"
    storage_class: str = ""
    request_ratio: float = 0.25
    tmp_mb: int = 64
    ephemeral_storage_mb: int = 512
    agent_limits: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> PodConfig:
        from coolcoding.sandbox.local.agent_launch import agent_limits

        return cls(
            namespace=settings.k8s_namespace,
            image=settings.k8s_sandbox_image,
            image_pull_policy=settings.k8s_image_pull_policy,
            uid=settings.k8s_sandbox_uid,
            agent_port=settings.k8s_agent_port,
            runtime_class=settings.k8s_runtime_class,
            workspace_size=settings.k8s_workspace_size,
            storage_class=settings.k8s_storage_class,
            request_ratio=settings.k8s_request_ratio,
            tmp_mb=max(1, settings.sandbox_tmp_bytes // 2**20),
            ephemeral_storage_mb=settings.k8s_ephemeral_storage_mb,
            agent_limits=agent_limits(settings),
        )


@dataclass(frozen=True)
class PodRequest:
    """One pod to build: whose, with which limits, on which volume."""

    name: str
    session_uuid: str | None  # None: an unclaimed warm pod
    network: bool = False
    cpus: float = 1.0
    memory_mb: int = 512
    claim: str | None = None  # the PVC mounted at /workspace; None: an emptyDir (judge jobs)
    kind: str = "session"
    warm: bool = False


def labels_for(session_uuid: str | None, *, network: bool, kind: str, warm: bool) -> dict[str, str]:
    labels = {**SANDBOX_SELECTOR, KIND: kind, NETWORK: "enabled" if network else "disabled"}
    if session_uuid is not None:
        labels[SESSION] = session_uuid
    if warm:
        labels[POOL] = "warm" if session_uuid is None else "claimed"
    return labels


def agent_command(cfg: PodConfig) -> list[str]:
    """The entrypoint: ``boot`` waits for the secret on a FIFO (written over the exec API by the
    server, so it is in no pod spec, argv, environment or file), then becomes the agent."""
    argv = ["/usr/bin/python3", "-S", "-m", "coolcoding.sandbox.kubernetes.boot",
            "--fifo", SECRET_FIFO, "--",
            "/usr/bin/python3", "-S", "-m", "coolcoding.agent",
            "--listen", f"0.0.0.0:{cfg.agent_port}", "--workspace", WORKSPACE]  # fmt: skip
    for name, value in cfg.agent_limits.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


def _resources(cfg: PodConfig, req: PodRequest) -> ResourceRequirements:
    mem = req.memory_mb + cfg.tmp_mb  # /run/coolcoding and any tmpfs count against memory
    limits = {"cpu": cpu_quantity(req.cpus), "memory": f"{mem}Mi",
              "ephemeral-storage": f"{cfg.ephemeral_storage_mb}Mi"}  # fmt: skip
    requests = {"cpu": cpu_quantity(req.cpus * cfg.request_ratio),
                "memory": f"{max(1, math.ceil(mem * cfg.request_ratio))}Mi",
                "ephemeral-storage": f"{max(1, cfg.ephemeral_storage_mb // 8)}Mi"}  # fmt: skip
    return ResourceRequirements(limits=limits, requests=requests)


def make_pod(cfg: PodConfig, req: PodRequest) -> Pod:
    """The session pod: the agent as its only process tree, nothing of the cluster inside."""
    workspace_source = (
        Volume(name="workspace",
               persistentVolumeClaim=PersistentVolumeClaimVolumeSource(claimName=req.claim))
        if req.claim is not None
        else Volume(name="workspace", emptyDir=EmptyDirVolumeSource(sizeLimit="256Mi"))
    )  # fmt: skip
    container = Container(
        name=CONTAINER,
        image=cfg.image,
        imagePullPolicy=cfg.image_pull_policy,
        command=agent_command(cfg),
        workingDir=WORKSPACE,
        env=None,  # the image's ENV only: no cluster data reaches user programs
        ports=[ContainerPort(name="agent", containerPort=cfg.agent_port, protocol="TCP")],
        resources=_resources(cfg, req),
        securityContext=SecurityContext(
            # restricted PSS: non-root, no escalation, no capabilities, the runtime's seccomp.
            runAsNonRoot=True,
            runAsUser=cfg.uid,
            runAsGroup=cfg.uid,
            allowPrivilegeEscalation=False,
            privileged=False,
            capabilities=Capabilities(drop=["ALL"]),
            seccompProfile=SeccompProfile(type="RuntimeDefault"),
            # The image is immutable for the user; writable places are the volumes below.
            readOnlyRootFilesystem=True,
            procMount="Default",
        ),
        volumeMounts=[
            VolumeMount(name="workspace", mountPath=WORKSPACE),
            VolumeMount(name="workspace", mountPath=APP_ALIAS),
            VolumeMount(name="tmp", mountPath="/tmp"),
            VolumeMount(name="home", mountPath="/home/sandbox"),
            VolumeMount(name="agent-run", mountPath=AGENT_RUN_DIR),
        ],
        # The agent is PID 1's child tree; a dead agent is a finished sandbox (restartPolicy).
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    spec = PodSpec(
        containers=[container],
        restartPolicy="Never",
        # No API token in the pod: user code must not talk to the Kubernetes API as anyone.
        automountServiceAccountToken=False,
        # No FOO_SERVICE_HOST variables: they would list the cluster's services to user code.
        enableServiceLinks=False,
        hostNetwork=False,
        hostPID=False,
        hostIPC=False,
        shareProcessNamespace=False,
        hostname="sandbox",
        terminationGracePeriodSeconds=5,
        runtimeClassName=cfg.runtime_class or None,
        securityContext=PodSecurityContext(
            runAsNonRoot=True,
            runAsUser=cfg.uid,
            runAsGroup=cfg.uid,
            fsGroup=cfg.uid,  # the volume is writable by the sandbox uid
            fsGroupChangePolicy="OnRootMismatch",  # no recursive chown of a big workspace
            seccompProfile=SeccompProfile(type="RuntimeDefault"),
        ),
        volumes=[
            workspace_source,
            Volume(name="tmp", emptyDir=EmptyDirVolumeSource(sizeLimit=f"{cfg.tmp_mb}Mi")),
            Volume(name="home", emptyDir=EmptyDirVolumeSource(sizeLimit=f"{cfg.tmp_mb}Mi")),
            # In memory: the secret FIFO never touches a node's disk.
            Volume(
                name="agent-run", emptyDir=EmptyDirVolumeSource(medium="Memory", sizeLimit="1Mi")
            ),
        ],
    )
    labels = labels_for(req.session_uuid, network=req.network, kind=req.kind, warm=req.warm)
    return Pod(
        metadata=ObjectMeta(name=req.name, namespace=cfg.namespace, labels=labels), spec=spec
    )


def make_pvc(cfg: PodConfig, name: str, session_uuid: str | None, *, warm: bool = False) -> (
    PersistentVolumeClaim
):  # fmt: skip
    """The session's workspace volume (kept when the pod stops, deleted with the session)."""
    labels = {**SANDBOX_SELECTOR, KIND: "session"}
    if session_uuid is not None:
        labels[SESSION] = session_uuid
    if warm:
        labels[POOL] = "warm" if session_uuid is None else "claimed"
    return PersistentVolumeClaim(
        metadata=ObjectMeta(name=name, namespace=cfg.namespace, labels=labels),
        spec=PersistentVolumeClaimSpec(
            accessModes=["ReadWriteOnce"],
            resources=VolumeResourceRequirements(requests={"storage": cfg.workspace_size}),
            storageClassName=cfg.storage_class or None,
            volumeMode="Filesystem",
        ),
    )


@dataclass(frozen=True)
class NetworkConfig:
    """What the sandbox NetworkPolicies must know about the cluster (from the deploy values)."""

    namespace: str
    agent_port: int = 7777
    blocked_cidrs: Sequence[str] = DEFAULT_BLOCKED_CIDRS
    # Addresses of external services a sandbox must never reach although they are public
    # (an external database or Redis given by IP), as CIDRs.
    extra_blocked_cidrs: Sequence[str] = ()
    dns_namespace: str = "kube-system"
    dns_labels: Mapping[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})


def make_network_policies(net: NetworkConfig) -> list[NetworkPolicy]:
    """Two policies, by label (the runtime may not create NetworkPolicies: its Role is pods and
    volumes only): every sandbox pod takes ingress only from the API pods on the agent port, and
    no egress; a pod labelled ``network=enabled`` may also reach the internet and DNS, never
    cluster-internal ranges, the API, the database or the metadata address."""
    deny = NetworkPolicy(
        metadata=ObjectMeta(name="sandbox-isolation", namespace=net.namespace,
                            labels={PART_OF: "coolcoding"}),
        spec=NetworkPolicySpec(
            podSelector=LabelSelector(matchLabels=dict(SANDBOX_SELECTOR)),
            policyTypes=["Ingress", "Egress"],
            ingress=[NetworkPolicyIngressRule(
                from_=[NetworkPolicyPeer(podSelector=LabelSelector(matchLabels=dict(API_SELECTOR)))],
                ports=[NetworkPolicyPort(port=net.agent_port, protocol="TCP")],
            )],
            egress=[],  # nothing: a session without network reaches no address at all
        ),
    )  # fmt: skip
    blocked = sorted({*net.blocked_cidrs, *net.extra_blocked_cidrs, METADATA_CIDR})
    internet = NetworkPolicy(
        metadata=ObjectMeta(name="sandbox-internet-egress", namespace=net.namespace,
                            labels={PART_OF: "coolcoding"}),
        spec=NetworkPolicySpec(
            podSelector=LabelSelector(matchLabels={**SANDBOX_SELECTOR, NETWORK: "enabled"}),
            policyTypes=["Egress"],
            egress=[
                NetworkPolicyEgressRule(to=[NetworkPolicyPeer(
                    ipBlock=IPBlock(cidr="0.0.0.0/0", except_=_within(blocked, "0.0.0.0/0")))]),
                NetworkPolicyEgressRule(
                    to=[NetworkPolicyPeer(
                        namespaceSelector=LabelSelector(
                            matchLabels={"kubernetes.io/metadata.name": net.dns_namespace}),
                        podSelector=LabelSelector(matchLabels=dict(net.dns_labels)))],
                    ports=[NetworkPolicyPort(port=53, protocol="UDP"),
                           NetworkPolicyPort(port=53, protocol="TCP")],
                ),
            ],
        ),
    )  # fmt: skip
    return [deny, internet]


def _within(cidrs: Sequence[str], outer: str) -> list[str]:
    """The CIDRs strictly inside ``outer`` (an ipBlock's ``except`` must be)."""
    from ipaddress import ip_network

    o = ip_network(outer)
    return [c for c in cidrs if ip_network(c) != o and ip_network(c).subnet_of(o)]  # type: ignore[arg-type]
