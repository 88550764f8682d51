"""The pod entrypoint's secret hand-over (``boot``), and the runtime's fail-closed guards that
need no cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coolcoding.errors import SandboxError
from coolcoding.sandbox.kubernetes import boot
from coolcoding.settings import Settings

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _start_boot(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    fifo, out = str(tmp_path / "s.fifo"), tmp_path / "got"
    agent = [sys.executable, "-c",
             f"import os, sys; open({str(out)!r}, 'wb').write(os.read(int(sys.argv[-1]), 1000));"
             f"open({str(out)!r} + '.env', 'w').write(' '.join(sorted(os.environ)))"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-S", "-m", "coolcoding.sandbox.kubernetes.boot",
                             "--fifo", fifo, "--", *agent], env={**os.environ, "PYTHONPATH": SRC,
                                                     "KUBERNETES_SERVICE_HOST": "10.96.0.1"})  # fmt: skip
    for _ in range(200):
        if os.path.exists(fifo):
            break
        time.sleep(0.02)
    return proc, fifo, out


def test_boot_hands_exactly_one_secret_to_the_agent_when_two_replicas_deliver(tmp_path) -> None:
    proc, fifo, out = _start_boot(tmp_path)
    secret = bytes(range(32))
    # Two deliveries at once (two replicas): the agent gets one whole secret, not 64 bytes.
    fd1 = os.open(fifo, os.O_WRONLY)
    fd2 = os.open(fifo, os.O_WRONLY)
    os.write(fd1, secret)
    os.write(fd2, secret)
    os.close(fd1)
    os.close(fd2)
    assert proc.wait(30) == 0
    assert out.read_bytes() == secret
    assert not os.path.exists(fifo)
    assert "KUBERNETES_SERVICE_HOST" not in (tmp_path / "got.env").read_text().split()


def test_boot_refuses_a_short_secret(tmp_path) -> None:
    proc, fifo, out = _start_boot(tmp_path)
    boot.deliver(fifo, b"short")
    assert proc.wait(30) != 0 and not out.exists()


def test_deliver_never_writes_the_secret_into_a_planted_regular_file(tmp_path) -> None:
    planted = tmp_path / "s.fifo"
    planted.write_bytes(b"")
    with pytest.raises(SystemExit):
        boot.deliver(str(planted), b"k" * 32, timeout_s=0.5)
    assert planted.read_bytes() == b""


def test_deliver_does_not_follow_a_symlink_to_a_fifo(tmp_path) -> None:
    real = tmp_path / "real.fifo"
    os.mkfifo(real)
    reader = threading.Thread(target=lambda: open(real, "rb").read(), daemon=True)
    reader.start()
    link = tmp_path / "s.fifo"
    link.symlink_to(real)
    with pytest.raises((SystemExit, OSError)):
        boot.deliver(str(link), b"k" * 32, timeout_s=0.5)
    open(real, "wb").close()  # release the reader


def test_runtime_requires_a_long_agent_key() -> None:
    from coolcoding.sandbox.kubernetes.runtime import KubernetesRuntime

    with pytest.raises(SandboxError) as e:
        KubernetesRuntime(Settings(runtime="kubernetes", k8s_agent_key="short"))
    assert "COOLCODING_K8S_AGENT_KEY" in e.value.log_message


async def test_runtime_refuses_to_create_a_pod_weaker_than_restricted() -> None:
    from coolcoding.sandbox.kubernetes import objects as o
    from coolcoding.sandbox.kubernetes.runtime import KubernetesRuntime

    rt = KubernetesRuntime(Settings(runtime="kubernetes", k8s_agent_key="k" * 32))
    pod = o.make_pod(rt.cfg, o.PodRequest(name="exec-x", session_uuid="x", claim="workspace-x"))
    pod.spec.containers[0].securityContext.allowPrivilegeEscalation = True
    with pytest.raises(SandboxError) as e:
        await rt._create(pod)  # refused before any request: no cluster needed
    assert e.value.reason == "pod_rejected" and rt.api_requests == 0


def test_secrets_differ_per_pod_and_per_key() -> None:
    from coolcoding.sandbox.kubernetes.runtime import KubernetesRuntime

    a = KubernetesRuntime(Settings(runtime="kubernetes", k8s_agent_key="a" * 32))
    b = KubernetesRuntime(Settings(runtime="kubernetes", k8s_agent_key="b" * 32))
    assert a.secret_for("uid-1") != a.secret_for("uid-2") != b.secret_for("uid-2")
    assert len(a.secret_for("uid-1")) == boot.SECRET_LEN
