"""The ``restricted`` Pod Security Standard, checked on a pod spec (as a plain dict).

Written from the standard's definition (kubernetes.io/docs/concepts/security/pod-security-standards,
policy version v1.30+): every baseline control plus the restricted ones. The runtime checks each
pod it creates (fail closed); tests check every pod template of the deployment too. An admission
controller with ``pod-security.kubernetes.io/enforce: restricted`` on the namespace (set by the
manifests) enforces the same in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALLOWED_VOLUME_TYPES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                  "persistentVolumeClaim", "projected", "secret"})  # fmt: skip
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                          "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                          "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                          "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"})  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})


def _containers(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(kind) or []:
            out.append((f"{kind}[{c.get('name')}]", c))
    return out


def restricted_violations(spec: Mapping[str, Any]) -> list[str]:
    """Every way ``spec`` (a PodSpec as a dict) breaks the restricted standard; [] if none."""
    bad: list[str] = []
    psc: Mapping[str, Any] = spec.get("securityContext") or {}
    # --- baseline ---
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            bad.append(f"{key} must be false")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        bad.append("pod: windowsOptions.hostProcess must be false")
    for v in spec.get("volumes") or []:
        types = set(v) - {"name"}
        if not types <= ALLOWED_VOLUME_TYPES:
            bad.append(f"volume {v.get('name')}: type {sorted(types)} is not allowed")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            bad.append(f"sysctl {sysctl.get('name')} is not allowed")
    bad += _check_selinux("pod", psc)
    bad += _check_apparmor("pod", psc)
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp == "Unconfined":
        bad.append("pod: seccompProfile must not be Unconfined")
    if psc.get("runAsUser") == 0:
        bad.append("pod: runAsUser must not be 0")
    containers = _containers(spec)
    for where, c in containers:
        sc: Mapping[str, Any] = c.get("securityContext") or {}
        if sc.get("privileged"):
            bad.append(f"{where}: privileged must be false")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(f"{where}: windowsOptions.hostProcess must be false")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                bad.append(f"{where}: hostPort must be unset")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{where}: procMount must be Default")
        bad += _check_selinux(where, sc)
        bad += _check_apparmor(where, sc)
        # --- restricted ---
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{where}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot") is True or
                (psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is not False)):  # fmt: skip
            bad.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            bad.append(f"{where}: runAsUser must not be 0")
        ctype = (sc.get("seccompProfile") or {}).get("type")
        effective = ctype if ctype is not None else pod_seccomp
        if effective not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{where}: capabilities must drop ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            bad.append(f"{where}: capabilities may only add NET_BIND_SERVICE, not {sorted(extra)}")
    return bad


def _check_selinux(where: str, sc: Mapping[str, Any]) -> list[str]:
    se = sc.get("seLinuxOptions") or {}
    bad = []
    if se.get("type", "") not in SELINUX_TYPES:
        bad.append(f"{where}: seLinuxOptions.type {se.get('type')!r} is not allowed")
    if se.get("user") or se.get("role"):
        bad.append(f"{where}: seLinuxOptions.user/role must be unset")
    return bad


def _check_apparmor(where: str, sc: Mapping[str, Any]) -> list[str]:
    t = (sc.get("appArmorProfile") or {}).get("type")
    return [] if t is None or t in APPARMOR_TYPES else [f"{where}: appArmorProfile {t} not allowed"]
