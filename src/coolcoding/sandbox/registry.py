"""Choose the sandbox runtime from settings (``COOLCODING_RUNTIME=local|kubernetes``)."""

from __future__ import annotations

from collections.abc import Mapping

from coolcoding.sandbox.base import Runtime, SandboxError
from coolcoding.settings import Settings


def check_environment(settings: Settings) -> None:
    """Fail at start-up, with a message saying what to fix, if the runtime cannot work here."""
    if settings.runtime == "local":
        from coolcoding.sandbox.local.environment import check_environment as check_local

        check_local(settings)
    else:
        make_runtime(settings)


def make_runtime(settings: Settings, *, extra_ro_binds: Mapping[str, str] | None = None) -> Runtime:
    """The configured runtime; raises ``SandboxError`` when it is not available on this host."""
    if settings.runtime == "local":
        from coolcoding.sandbox.local.runtime import LocalRuntime

        return LocalRuntime(settings, extra_ro_binds=extra_ro_binds)
    if settings.runtime == "kubernetes":
        from coolcoding.sandbox.kubernetes.runtime import KubernetesRuntime

        return KubernetesRuntime(settings)  # extra_ro_binds: shipped in the sandbox image
    raise SandboxError("runtime_unknown", "Sandboxes are not available.", settings.runtime)
