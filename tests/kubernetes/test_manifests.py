"""The deployment: every rendered manifest is valid Kubernetes (the OpenAPI schema of a current
release, offline), pods pass the restricted standard, the committed files equal the rendering
(drift), and kustomize builds the committed directories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from coolcoding.sandbox.kubernetes.manifests import render
from coolcoding.sandbox.kubernetes.pss import restricted_violations
from coolcoding.sandbox.kubernetes.render import render_files
from coolcoding.sandbox.kubernetes.values import Values, load_values
from tests.kubernetes.k8s_cases import golden_objects

ROOT = Path(__file__).resolve().parents[2]
# The kubectl of the development machine's release and a current one (schemas ship with
# kubernetes-validate: no network).
K8S_VERSIONS = ("1.32.0", "1.35.0")
K8S_VERSION = K8S_VERSIONS[-1]
VALUES = {"default": None, "production": ROOT / "deploy" / "values-production.yaml"}
COMMITTED = {
    "default": ROOT / "deploy" / "kubernetes",
    "production": ROOT / "deploy" / "production",
}


def _objects(which: str) -> list[dict]:
    v = load_values(VALUES[which])
    return [o.to_dict() for objs in render(v).values() for o in objs]


def _pod_specs(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        return [spec]
    if "template" in spec:
        return [spec["template"]["spec"]]
    return []


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("which", sorted(VALUES))
def test_every_manifest_is_valid_against_the_openapi_schema(which: str, version: str) -> None:
    for obj in _objects(which):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("name", sorted(golden_objects()))
def test_session_objects_are_valid_against_the_openapi_schema(name: str) -> None:
    kubernetes_validate.validate(golden_objects()[name], K8S_VERSION, strict=True)


def test_the_validator_rejects_an_invalid_object() -> None:
    bad = golden_objects()["pod-session.yaml"]
    bad["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


@pytest.mark.parametrize("which", sorted(VALUES))
def test_every_pod_template_passes_the_restricted_standard(which: str) -> None:
    specs = [(o["metadata"]["name"], s) for o in _objects(which) for s in _pod_specs(o)]
    assert specs, "no pod templates rendered"
    for name, spec in specs:
        assert restricted_violations(spec) == [], name


@pytest.mark.parametrize("which", sorted(VALUES))
def test_committed_manifests_equal_the_rendering(which: str) -> None:
    expected = render_files(load_values(VALUES[which]))
    committed = {p.name: p.read_text() for p in COMMITTED[which].glob("*.yaml")}
    assert committed == expected, (
        f"{COMMITTED[which]} drifted: run coolcoding deploy render "
        f"{'-f ' + str(VALUES[which]) if VALUES[which] else ''} --out-dir {COMMITTED[which]}"
    )


def test_role_grants_pods_and_volume_claims_only() -> None:
    role = next(o for o in _objects("default") if o["kind"] == "Role")
    granted = {r for rule in role["rules"] for r in rule["resources"]}
    assert granted == {"pods", "pods/exec", "pods/log", "persistentvolumeclaims"}
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    assert not any("*" in rule["verbs"] for rule in role["rules"])


def test_autoscaler_and_probes_follow_the_issue() -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for o in _objects("default")}
    hpa = objs[("HorizontalPodAutoscaler", "coolcoding-api")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
               for m in hpa["metrics"]}  # fmt: skip
    assert targets == {"cpu": 70, "memory": 80}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    api = objs[("Deployment", "coolcoding-api")]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["path"] == "/api/health/"
    assert objs[("Service", "coolcoding-api")]["spec"]["type"] == "LoadBalancer"
    assert objs[("PodDisruptionBudget", "coolcoding-api")]["spec"]["minAvailable"] == 1
    ns = objs[("Namespace", "coding-platform")]["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"


def test_health_probe_path_is_a_real_route() -> None:
    from coolcoding.api.routes.health import router

    assert "/api/health/" in {getattr(r, "path", "") for r in router.routes}


def test_external_datastores_render_no_in_cluster_ones() -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in _objects("production")}
    assert ("StatefulSet", "coolcoding-postgres") not in kinds
    internet = next(o for o in _objects("production")
                    if o["metadata"]["name"] == "sandbox-internet-egress")  # fmt: skip
    assert "10.40.0.0/24" in internet["spec"]["egress"][0]["to"][0]["ipBlock"]["except"]


def test_values_file_refuses_unknown_keys(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("autoscaling: {max_replica: 3}\n")
    with pytest.raises(ValueError):
        load_values(f)


def test_render_command_prints_what_the_module_renders(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from coolcoding.cli import app

    result = CliRunner().invoke(app, ["deploy", "render"])
    assert result.exit_code == 0
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs == _objects("default")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nope: 1\n")
    result = CliRunner().invoke(app, ["deploy", "render", "-f", str(bad)])
    assert result.exit_code == 2


def test_generated_secret_is_fresh_and_valid() -> None:
    from coolcoding.sandbox.kubernetes.datastores import generated_secret

    a, b = generated_secret(Values()).to_dict(), generated_secret(Values()).to_dict()
    assert (
        a["stringData"]["COOLCODING_K8S_AGENT_KEY"] != b["stringData"]["COOLCODING_K8S_AGENT_KEY"]
    )
    kubernetes_validate.validate(a, K8S_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("which", sorted(COMMITTED))
def test_kustomize_builds_the_committed_directory(which: str) -> None:
    out = subprocess.run(["kubectl", "kustomize", str(COMMITTED[which])],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in _objects(which)
    )
