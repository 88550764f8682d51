"""``KubernetesRuntime``: one pod ``exec-{uuid}`` and one volume claim ``workspace-{uuid}`` per
session, in one namespace, with lightkube's async client.

- Reads come from two watch caches (``reflector.py``: pods, volume claims), never polling.
- The API reaches each pod's agent at the pod IP with a per-pod secret, HMAC(agent key, pod uid):
  any replica holding the shared key reaches any pod, and nothing is stored. (The port-forward
  API would route every byte through the API server; a NetworkPolicy admits only the API pods.)
- ``start``/``stop`` are idempotent (a 409 on create or a 404 on delete is success); ``stop``
  deletes the pod and keeps the volume; ``delete_workspace`` deletes both.
- Warm pool (``k8s_warm_pool_size``): pods with a fresh volume, started and with their agent
  ready, claimed by relabelling (two requests) by a first session start or a judge job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod
from lightkube.types import PatchType

from coolcoding.agent.client import AgentConnectionLost, AgentError
from coolcoding.sandbox.base import Runtime, Sandbox, SandboxError, SandboxSpec
from coolcoding.sandbox.kubernetes import objects as o
from coolcoding.sandbox.kubernetes.pss import restricted_violations
from coolcoding.sandbox.kubernetes.reflector import Reflector
from coolcoding.sandbox.kubernetes.sandbox import KubernetesSandbox
from coolcoding.settings import Settings

log = logging.getLogger(__name__)
MIN_KEY = 32


class KubernetesRuntime(Runtime):
    def __init__(self, settings: Settings) -> None:
        if len(settings.k8s_agent_key) < MIN_KEY:
            raise SandboxError("runtime_unavailable", "Sandboxes are not available on this server.",
                               f"COOLCODING_K8S_AGENT_KEY must have at least {MIN_KEY} characters "
                               "(coolcoding deploy secrets generates one)")  # fmt: skip
        self.settings = settings
        self.cfg = o.PodConfig.from_settings(settings)
        self.ns = settings.k8s_namespace
        self.instance_id = f"kubernetes:{self.ns}"
        self._key = settings.k8s_agent_key.encode()
        self._client: AsyncClient | None = None
        self.pods: Reflector[Pod] | None = None
        self.pvcs: Reflector[PersistentVolumeClaim] | None = None
        self.sandboxes: dict[str, KubernetesSandbox] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._init_lock = asyncio.Lock()
        self._pool_task: asyncio.Task[None] | None = None
        self.api_requests = 0  # writes and execs (bench: requests per session start)

    # --- plumbing ---------------------------------------------------------------------------

    async def _ensure(self) -> tuple[AsyncClient, Reflector[Pod], Reflector[PersistentVolumeClaim]]:
        async with self._init_lock:
            if self._client is None:
                path = self.settings.k8s_kubeconfig
                config = KubeConfig.from_file(path) if path else None
                self._client = AsyncClient(config=config, namespace=self.ns)
                self.pods = Reflector(self._client, Pod, self.ns, dict(o.SANDBOX_SELECTOR))
                self.pvcs = Reflector(self._client, PersistentVolumeClaim, self.ns,
                                      dict(o.SANDBOX_SELECTOR))  # fmt: skip
                if self.settings.k8s_warm_pool_size > 0:
                    self._pool_task = asyncio.ensure_future(self._keep_pool())
        assert self.pods is not None and self.pvcs is not None
        # Idempotent; waits for the first listing of both (the caller's timeout bounds it).
        await asyncio.gather(self.pods.start(), self.pvcs.start())
        return self._client, self.pods, self.pvcs

    def secret_for(self, pod_uid: str) -> bytes:
        return hmac.new(
            self._key, b"coolcoding-k8s-agent|" + pod_uid.encode(), hashlib.sha256
        ).digest()

    async def _create(self, obj: Pod | PersistentVolumeClaim) -> None:
        if isinstance(obj, Pod):
            bad = restricted_violations(obj.to_dict()["spec"])
            if bad:  # fail closed: never start a pod weaker than the standard
                raise SandboxError(
                    "pod_rejected", "The sandbox could not be started.", "; ".join(bad)
                )
        client, _, _ = await self._ensure()
        self.api_requests += 1
        try:
            await client.create(obj)
        except ApiError as e:
            if e.status.code != 409:
                raise SandboxError("k8s_error", "The sandbox could not be started.", str(e)) from e

    async def _delete(self, kind: type[Pod] | type[PersistentVolumeClaim], name: str) -> None:
        client, _, _ = await self._ensure()
        self.api_requests += 1
        try:
            await client.delete(kind, name, namespace=self.ns)
        except ApiError as e:
            if e.status.code != 404:
                raise SandboxError("k8s_error", "The sandbox could not be stopped.", str(e)) from e

    def _session_pod(self, uuid: str) -> Pod | None:
        if self.pods is None:
            return None
        live = self.pods.find(lambda p: _labels(p).get(o.SESSION) == uuid
                              and _meta(p).deletionTimestamp is None)  # fmt: skip
        return live[0] if live else None

    def _session_pvc(self, uuid: str) -> PersistentVolumeClaim | None:
        if self.pvcs is None:
            return None
        found = self.pvcs.find(lambda c: _labels(c).get(o.SESSION) == uuid
                               and _meta(c).deletionTimestamp is None)  # fmt: skip
        return found[0] if found else None

    @staticmethod
    def _running_ip(pod: Pod | None) -> str | None:
        if pod is None or pod.status is None or pod.status.phase != "Running":
            return None
        return pod.status.podIP

    async def _wait_running(self, name: str) -> Pod:
        _, pods, _ = await self._ensure()

        def ready() -> Pod | None:
            pod = pods.objects.get(name)
            if (
                pod is not None
                and pod.status is not None
                and pod.status.phase in ("Failed", "Succeeded")
            ):
                raise SandboxError("pod_ended", "The sandbox stopped while starting.", name)
            return pod if self._running_ip(pod) else None

        try:
            pod: Pod = await pods.wait_for(ready, self.settings.k8s_pod_start_timeout_s)
        except TimeoutError as e:
            raise SandboxError("start_timeout", "The sandbox took too long to start.",
                               f"pod {name} not running after {self.settings.k8s_pod_start_timeout_s}s "
                               "(check image pulls, quotas and node capacity)") from e  # fmt: skip
        return pod

    async def _wait_name_free(self, name: str) -> None:
        """A stopped pod's name is reused by the next start: wait until the old pod is gone
        (a create would conflict, and the old pod would be taken for the new one)."""
        _, pods, _ = await self._ensure()
        try:
            await pods.wait_for(
                lambda: name not in pods.objects, self.settings.k8s_pod_start_timeout_s
            )
        except TimeoutError as e:
            raise SandboxError("start_timeout", "The sandbox took too long to start.",
                               f"pod {name} still terminating") from e  # fmt: skip

    async def _deliver_secret(self, pod: Pod) -> None:
        client, _, _ = await self._ensure()
        self.api_requests += 1
        await client.exec(_name(pod), namespace=self.ns, container=o.CONTAINER,
                          command=["/usr/bin/python3", "-S", "-m", "coolcoding.sandbox.kubernetes.boot",
                                   "--deliver", o.SECRET_FIFO],
                          stdin=self.secret_for(_uid(pod)), stdout=True, stderr=True,
                          decode=None, raise_on_error=True, timeout=30)  # fmt: skip

    async def _connect(self, pod: Pod, uuid: str, disk_bytes: int) -> KubernetesSandbox:
        """The pod's sandbox once its agent answers; delivers the secret if the agent is not
        listening yet (connection refused: ``boot`` still waits, no user code runs)."""
        ip = self._running_ip(pod)
        assert ip is not None
        sb = KubernetesSandbox(uuid, (ip, self.cfg.agent_port), self.secret_for(_uid(pod)),
                               pod=_name(pod), pod_uid=_uid(pod),
                               disk_bytes=disk_bytes, wait_gone=lambda: self._wait_gone(_name(pod)),
                               connect_timeout_s=self.settings.agent_connect_timeout_s)  # fmt: skip
        delivered = False
        deadline = asyncio.get_running_loop().time() + self.settings.agent_start_timeout_s
        while True:
            try:
                client = await sb.connect_agent()
                await client.close()
                return sb
            except SandboxError as e:
                refused = isinstance(e.__cause__, ConnectionRefusedError)
                if refused and not delivered:
                    try:
                        await self._deliver_secret(pod)
                    except Exception:  # another replica delivered it first, or the pod ended
                        log.info("secret delivery to %s failed", _name(pod), exc_info=True)
                    delivered = True
                elif asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _wait_gone(self, name: str) -> str:
        _, pods, _ = await self._ensure()

        def gone() -> bool:
            pod = pods.objects.get(name)
            return pod is None or pod.status is None or pod.status.phase in ("Failed", "Succeeded")

        async with pods.changed:
            while not gone():
                await pods.changed.wait()
        return "The sandbox stopped."

    # --- the runtime interface -----------------------------------------------------------

    async def start(self, spec: SandboxSpec, state: dict[str, Any] | None = None) -> Sandbox:
        await self._ensure()
        uuid = spec.session_uuid
        async with self._locks.setdefault(uuid, asyncio.Lock()):
            sb = self.sandboxes.get(uuid)
            if sb is not None and self.poll(uuid) is None:
                return sb
            if sb is not None:  # its pod ended: drop its connections
                await sb.close()
                del self.sandboxes[uuid]
            pod = self._session_pod(uuid)
            adopted = pod is not None
            if (
                pod is not None
                and pod.status is not None
                and pod.status.phase in ("Failed", "Succeeded")
            ):
                await self._delete(Pod, _name(pod))  # an ended pod: start afresh
                pod, adopted = None, False
            if pod is None and self._session_pvc(uuid) is None:
                pod = await self._claim_warm(spec)
            if pod is None:
                claim = self._session_pvc(uuid)
                claim_name = _name(claim) if claim is not None else o.pvc_name(uuid)
                if claim is None:
                    await self._create(o.make_pvc(self.cfg, claim_name, uuid))
                await self._wait_name_free(o.pod_name(uuid))
                req = o.PodRequest(name=o.pod_name(uuid), session_uuid=uuid, network=spec.network,
                                   cpus=spec.cpus, memory_mb=spec.memory_mb, claim=claim_name)  # fmt: skip
                await self._create(o.make_pod(self.cfg, req))
                pod_name = req.name
            else:
                pod_name = _name(pod)
                await self._set_network(pod, spec.network)
            running = await self._wait_running(pod_name)
            sb = await self._connect(running, uuid, spec.disk_bytes)
            sb.env = dict(spec.env)
            sb.adopted = adopted
            self.sandboxes[uuid] = sb
            return sb

    async def _set_network(self, pod: Pod, network: bool) -> None:
        want = "enabled" if network else "disabled"
        if _labels(pod).get(o.NETWORK) != want:
            client, _, _ = await self._ensure()
            self.api_requests += 1
            await client.patch(Pod, _name(pod), {"metadata": {"labels": {o.NETWORK: want}}},
                               namespace=self.ns, patch_type=PatchType.MERGE)  # fmt: skip

    async def _claim_warm(self, spec: SandboxSpec | None, kind: str = "session") -> Pod | None:
        """Take a ready warm pod (same limits as the spec) by relabelling it; the resource
        version in the patch makes two replicas' claims of one pod conflict (409)."""
        if self.settings.k8s_warm_pool_size == 0 or self.pods is None:
            return None
        s = self.settings
        if spec is not None and (spec.memory_mb, spec.cpus) != (
            s.sandbox_memory_mb,
            s.sandbox_cpus,
        ):
            return None
        client, pods, _ = await self._ensure()
        uuid = spec.session_uuid if spec is not None else "judge-" + secrets.token_hex(6)
        for pod in pods.find(lambda p: _labels(p).get(o.POOL) == "warm"
                             and self._running_ip(p) is not None):  # fmt: skip
            labels = {o.SESSION: uuid, o.POOL: "claimed", o.KIND: kind,
                      o.NETWORK: "enabled" if spec is not None and spec.network else "disabled"}  # fmt: skip
            self.api_requests += 1
            try:
                claimed = await client.patch(
                    Pod, _name(pod), namespace=self.ns, patch_type=PatchType.MERGE,
                    obj={"metadata": {"labels": labels, "resourceVersion": _meta(pod).resourceVersion}},
                )  # fmt: skip
            except ApiError as e:
                if e.status.code in (404, 409):
                    continue
                raise
            claim = self._claim_name(claimed)
            if claim is not None:
                self.api_requests += 1
                await client.patch(PersistentVolumeClaim, claim, namespace=self.ns,
                                   patch_type=PatchType.MERGE,
                                   obj={"metadata": {"labels": {o.SESSION: uuid, o.POOL: "claimed"}}})  # fmt: skip
            return claimed
        return None

    @staticmethod
    def _claim_name(pod: Pod) -> str | None:
        for v in (pod.spec.volumes or []) if pod.spec is not None else []:
            if v.name == "workspace" and v.persistentVolumeClaim is not None:
                return v.persistentVolumeClaim.claimName
        return None

    async def _keep_pool(self) -> None:
        """Keep ``k8s_warm_pool_size`` unclaimed warm pods (every replica does; a race may add
        one or two, which the next claims use up)."""
        _, pods, _ = await self._ensure()
        while True:
            try:
                warm = pods.find(lambda p: _labels(p).get(o.POOL) == "warm")
                if len(warm) < self.settings.k8s_warm_pool_size:
                    await self._start_warm()
                    continue
                async with pods.changed:
                    await pods.changed.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("warm pool: could not start a pod", exc_info=True)
                await asyncio.sleep(5)

    async def _start_warm(self) -> None:
        name = "exec-warm-" + secrets.token_hex(6)
        claim = "workspace-warm-" + name.rpartition("-")[2]
        await self._create(o.make_pvc(self.cfg, claim, None, warm=True))
        req = o.PodRequest(name=name, session_uuid=None, cpus=self.settings.sandbox_cpus,
                           memory_mb=self.settings.sandbox_memory_mb, claim=claim, warm=True)  # fmt: skip
        await self._create(o.make_pod(self.cfg, req))
        pod = await self._wait_running(name)
        await self._connect(pod, "warm", 0)  # the agent is up: a claim is ready at once

    async def stop(self, session_uuid: str) -> None:
        sb = self.sandboxes.pop(session_uuid, None)
        if sb is not None:
            await sb.close()
        await self._ensure()
        pod = self._session_pod(session_uuid)
        name = _name(pod) if pod is not None else (sb.pod if sb else o.pod_name(session_uuid))
        await self._delete(Pod, name)

    def poll(self, session_uuid: str) -> int | None:
        pod = self._session_pod(session_uuid)
        if pod is None or pod.status is None:
            return 0
        if pod.status.phase in ("Pending", "Running"):
            return None
        if pod.status.phase == "Succeeded":
            return 0
        for cs in pod.status.containerStatuses or []:
            if cs.state is not None and cs.state.terminated is not None:
                return cs.state.terminated.exitCode or 1
        return 1

    def get_state(self, session_uuid: str) -> dict[str, Any]:
        sb = self.sandboxes.get(session_uuid)
        pod = self._session_pod(session_uuid)
        if pod is None:
            return {}
        return {"pod": _name(pod), "uid": _uid(pod),
                "pvc": self._claim_name(pod), "ip": sb.address[0] if sb else None}  # fmt: skip

    def workspace_dir(self, session_uuid: str) -> str | None:
        return None  # no host path: files go through the agent

    async def delete_workspace(self, session_uuid: str) -> None:
        pod = self._session_pod(session_uuid)
        claim = self._claim_name(pod) if pod is not None else None
        await self.stop(session_uuid)
        names = {claim, o.pvc_name(session_uuid)}
        found = self._session_pvc(session_uuid)
        if found is not None:
            names.add(_name(found))
        for name in sorted(n for n in names if n):
            await self._delete(PersistentVolumeClaim, name)

    @asynccontextmanager
    async def _ephemeral(self, files: Mapping[str, bytes], network: bool, memory_mb: int,
                         pids: int, executables: Collection[str]) -> AsyncIterator[Sandbox]:  # fmt: skip
        await self._ensure()
        # A warm pod has the session limits; a judge job needing more memory starts its own.
        fits = not network and memory_mb <= self.settings.sandbox_memory_mb
        pod = await self._claim_warm(None, kind="ephemeral") if fits else None
        claim = self._claim_name(pod) if pod is not None else None
        name = _name(pod) if pod is not None else "judge-" + secrets.token_hex(8)
        try:
            if pod is None:
                req = o.PodRequest(name=name, session_uuid=None, network=network, kind="ephemeral",
                                   cpus=self.settings.sandbox_cpus, memory_mb=memory_mb)  # fmt: skip
                await self._create(o.make_pod(self.cfg, req))
            running = await self._wait_running(name)
            sb = await self._connect(running, name, self.settings.max_workspace_bytes)
            try:
                await sb.write_files(files)
                if executables:  # the agent writes 0644; a cached binary must run as it is
                    await sb.exec(["chmod", "0755", "--", *executables])
                yield sb
            finally:
                await sb.close()
        finally:
            await self._delete(Pod, name)
            if claim is not None:
                await self._delete(PersistentVolumeClaim, claim)

    def ephemeral(self, files: Mapping[str, bytes], *, network: bool = False,
                  memory_mb: int = 512, pids: int = 64, executables: Collection[str] = (),
                  ro_binds: Mapping[str, str] | None = None, owner: str = "",
                  ) -> contextlib.AbstractAsyncContextManager[Sandbox]:  # fmt: skip
        if ro_binds:  # a pod cannot mount this server's directories (dependency caching)
            raise SandboxError("unsupported", "Cached dependencies are not available on this "
                               "server's sandboxes.", "ro_binds on the Kubernetes runtime")  # fmt: skip
        return self._ephemeral(files, network, memory_mb, pids, executables)

    async def shutdown(self) -> None:
        for uuid in list(self.sandboxes):
            if self.settings.sandbox_keep_on_shutdown:
                await self.release(uuid)
            else:
                await self.stop(uuid)
        if self._pool_task is not None:
            self._pool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pool_task
        for r in (self.pods, self.pvcs):
            if r is not None:
                await r.stop()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def release(self, session_uuid: str) -> bool:
        sb = self.sandboxes.pop(session_uuid, None)
        if sb is not None:
            await sb.close()
        return True  # pods outlive API replicas

    async def cleanup_orphans(self, keep: Collection[str] = ()) -> int:
        """Delete pods that ended (their sessions start afresh) and judge pods left by a
        replica that died mid-job; running session pods belong to their lease holders."""
        _, pods, _ = await self._ensure()
        ended = pods.find(lambda p: p.status is not None and p.status.phase in ("Failed", "Succeeded")
                          and _labels(p).get(o.SESSION) not in keep)  # fmt: skip
        judges = pods.find(lambda p: _labels(p).get(o.KIND) == "ephemeral"
                           and _meta(p).creationTimestamp is not None
                           and _age_s(p) > self.settings.exec_max_wall_s * 4 + 300)  # fmt: skip
        victims = {_name(p) for p in ended + judges}
        for name in sorted(victims):
            await self._delete(Pod, name)
        return len(victims)

    async def reachable(self, session_uuid: str, state: Mapping[str, Any] | None) -> bool:
        await self._ensure()
        pod = self._session_pod(session_uuid)
        ip = self._running_ip(pod)
        if pod is None or ip is None:
            return False
        sb = KubernetesSandbox(session_uuid, (ip, self.cfg.agent_port), self.secret_for(_uid(pod)),
                               pod=_name(pod), pod_uid=_uid(pod), disk_bytes=0,
                               wait_gone=lambda: self._wait_gone(_name(pod)),
                               connect_timeout_s=self.settings.agent_connect_timeout_s)  # fmt: skip
        try:
            client = await sb.connect_agent()
        except SandboxError:
            return False
        try:
            async with asyncio.timeout(self.settings.agent_connect_timeout_s):
                return await client.ping()
        except (AgentError, AgentConnectionLost, OSError, TimeoutError):
            return False
        finally:
            await client.close()


def _meta(obj: Pod | PersistentVolumeClaim) -> ObjectMeta:
    return obj.metadata if obj.metadata is not None else ObjectMeta()


def _name(obj: Pod | PersistentVolumeClaim) -> str:
    return _meta(obj).name or ""


def _uid(obj: Pod | PersistentVolumeClaim) -> str:
    return _meta(obj).uid or ""


def _labels(obj: Pod | PersistentVolumeClaim) -> dict[str, str]:
    return dict(_meta(obj).labels or {})


def _age_s(pod: Pod) -> float:
    from datetime import UTC, datetime

    created = _meta(pod).creationTimestamp
    return (datetime.now(UTC) - created).total_seconds() if created is not None else 0.0
