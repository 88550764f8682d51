"""KubernetesRuntime against a real cluster: start, terminal, sync, judge, stop, delete.

Runs only where a cluster is reachable: ``KUBECONFIG`` set and answering, the namespace applied
(``kubectl apply -k deploy/kubernetes``), and the sandbox image built and loadable by the nodes
(``COOLCODING_TEST_K8S_IMAGE``, e.g. ``kind load docker-image``). Otherwise skipped, saying what
is missing. No mock of the Kubernetes API is used anywhere.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator

import pytest

from coolcoding.sandbox.base import ExecLimits, SandboxSpec
from coolcoding.settings import Settings


def _skip_reason() -> str | None:
    if not os.environ.get("KUBECONFIG"):
        return "no Kubernetes cluster: KUBECONFIG is not set"
    if not os.environ.get("COOLCODING_TEST_K8S_IMAGE"):
        return "COOLCODING_TEST_K8S_IMAGE (the sandbox image the nodes can pull) is not set"
    try:
        from lightkube import Client
        from lightkube.resources.core_v1 import Namespace

        Client(timeout=5).get(Namespace, os.environ.get("COOLCODING_TEST_K8S_NAMESPACE",
                                                        "coding-platform"))  # fmt: skip
    except Exception as e:
        return f"the cluster of KUBECONFIG is not reachable or lacks the namespace: {e!r}"
    return None


REASON = _skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
async def runtime() -> AsyncIterator:
    from coolcoding.sandbox.kubernetes.runtime import KubernetesRuntime

    settings = Settings(
        runtime="kubernetes",
        k8s_kubeconfig=os.environ["KUBECONFIG"],
        k8s_namespace=os.environ.get("COOLCODING_TEST_K8S_NAMESPACE", "coding-platform"),
        k8s_sandbox_image=os.environ["COOLCODING_TEST_K8S_IMAGE"],
        k8s_agent_key=secrets.token_urlsafe(32),
        sandbox_keep_on_shutdown=False,
    )
    rt = KubernetesRuntime(settings)
    yield rt
    await rt.shutdown()


async def test_start_terminal_sync_stop_delete(runtime) -> None:
    from coolcoding.sandbox.kubernetes import objects as o

    sid = str(uuid.uuid4())
    sb = await runtime.start(SandboxSpec(session_uuid=sid))
    assert runtime.poll(sid) is None and runtime.workspace_dir(sid) is None
    assert runtime.get_state(sid)["pod"] == o.pod_name(sid)
    await sb.write_files({"hello.txt": b"hi\n"})
    term = await sb.open_terminal(80, 24)
    await term.write(b"cat /app/hello.txt > /workspace/copy.txt; echo done-$((1+1))\n")
    out = b""
    async with asyncio.timeout(60):
        while b"done-2" not in out:
            out += await term.read()
    await term.close()
    assert await sb.read_file("copy.txt") == b"hi\n"
    again = await runtime.start(SandboxSpec(session_uuid=sid))
    assert again is sb  # idempotent
    await runtime.stop(sid)
    await runtime.stop(sid)  # idempotent
    assert runtime._session_pvc(sid) is not None  # the volume stays
    sb2 = await runtime.start(SandboxSpec(session_uuid=sid))
    assert await sb2.read_file("copy.txt") == b"hi\n"
    await runtime.delete_workspace(sid)
    await asyncio.sleep(2)
    assert runtime._session_pvc(sid) is None or runtime._session_pvc(sid).metadata.deletionTimestamp


async def test_judge_in_an_ephemeral_pod(runtime) -> None:
    async with runtime.ephemeral({"main.py": b"print(sum(range(10)))\n"}) as sb:
        r = await sb.exec(["/usr/bin/python3", "main.py"], limits=ExecLimits(cpu_s=2, wall_s=20))
    assert (r.exit_code, r.stdout, r.limit_hit) == (0, b"45\n", None)
    assert r.cpu_ms > 0 and r.memory_kb > 0


async def test_sandbox_without_network_reaches_nothing(runtime) -> None:
    sid = str(uuid.uuid4())
    sb = await runtime.start(SandboxSpec(session_uuid=sid, network=False))
    try:
        r = await sb.exec(["/usr/bin/python3", "-c",
                           "import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)"],
                          limits=ExecLimits(wall_s=20))  # fmt: skip
        assert r.exit_code != 0
    finally:
        await runtime.delete_workspace(sid)
