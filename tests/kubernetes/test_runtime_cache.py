"""What the runtime concludes from its watch cache (pure: the cache is filled with objects as
the watch would deliver them; no request is made and none is faked). The runtime's requests
are exercised only against a real cluster (test_live_cluster.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from lightkube.models.core_v1 import (
    ContainerState,
    ContainerStateTerminated,
    ContainerStatus,
    PodStatus,
)
from lightkube.resources.core_v1 import Pod

from coolcoding.sandbox.kubernetes import objects as o
from coolcoding.sandbox.kubernetes.reflector import Reflector
from coolcoding.sandbox.kubernetes.runtime import KubernetesRuntime
from coolcoding.settings import Settings

UUID = "7d0c4a4e-1111-4222-8333-944455556666"


def _runtime(*pods: Pod) -> KubernetesRuntime:
    rt = KubernetesRuntime(Settings(runtime="kubernetes", k8s_agent_key="k" * 32))
    rt.pods = Reflector(None, Pod, rt.ns, dict(o.SANDBOX_SELECTOR))  # type: ignore[arg-type]
    rt.pods.objects = {p.metadata.name: p for p in pods}
    return rt


def _pod(rt_cfg: o.PodConfig, phase: str, *, exit_code: int | None = None,
         terminating: bool = False, name: str | None = None) -> Pod:  # fmt: skip
    pod = o.make_pod(rt_cfg, o.PodRequest(name=name or o.pod_name(UUID), session_uuid=UUID,
                                          claim="workspace-warm-abc"))  # fmt: skip
    pod.metadata.uid = "uid-1"
    statuses = None
    if exit_code is not None:
        statuses = [ContainerStatus(name="sandbox", image="i", imageID="", ready=False,
                                    restartCount=0, state=ContainerState(
                                        terminated=ContainerStateTerminated(exitCode=exit_code)))]  # fmt: skip
    pod.status = PodStatus(phase=phase, podIP="10.1.2.3", containerStatuses=statuses)
    if terminating:
        pod.metadata.deletionTimestamp = datetime.now(UTC)
    return pod


def test_poll_follows_the_pod_phase() -> None:
    cfg = _runtime().cfg
    assert _runtime(_pod(cfg, "Running")).poll(UUID) is None
    assert _runtime(_pod(cfg, "Pending")).poll(UUID) is None
    assert _runtime(_pod(cfg, "Succeeded")).poll(UUID) == 0
    assert _runtime(_pod(cfg, "Failed", exit_code=137)).poll(UUID) == 137
    assert _runtime().poll(UUID) == 0  # no pod: stopped


def test_a_terminating_pod_is_not_the_sessions_pod() -> None:
    cfg = _runtime().cfg
    rt = _runtime(_pod(cfg, "Running", terminating=True))
    assert rt._session_pod(UUID) is None and rt.poll(UUID) == 0


def test_state_names_the_pod_and_its_volume_never_the_secret() -> None:
    cfg = _runtime().cfg
    rt = _runtime(_pod(cfg, "Running"))
    state = rt.get_state(UUID)
    assert state == {
        "pod": o.pod_name(UUID),
        "uid": "uid-1",
        "pvc": "workspace-warm-abc",
        "ip": None,
    }
    assert rt.workspace_dir(UUID) is None
    assert rt.secret_for("uid-1").hex() not in str(state)
