"""The platform's deployment as typed objects, from ``Values`` (``coolcoding deploy render``).

One source of truth with the session pods: the sandbox NetworkPolicies, labels and names come
from ``objects.py``. ``render`` returns ``{file name: [objects]}``; ``deploy/kubernetes`` holds
the default values' rendering plus a ``kustomization.yaml`` (``kubectl apply -k``).
"""

from __future__ import annotations

from typing import Any

from lightkube.models.apps_v1 import DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment
from lightkube.models.autoscaling_v2 import (
    CrossVersionObjectReference as ScaleTarget,
)
from lightkube.models.autoscaling_v2 import (
    HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec,
    HPAScalingPolicy,
    HPAScalingRules,
    MetricSpec,
    MetricTarget,
    ResourceMetricSource,
)
from lightkube.models.core_v1 import (
    ConfigMapEnvSource,
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    EnvFromSource,
    EnvVar,
    EnvVarSource,
    HTTPGetAction,
    ObjectFieldSelector,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SecretEnvSource,
    ServicePort,
    ServiceSpec,
    Volume,
    VolumeMount,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.models.policy_v1 import PodDisruptionBudgetSpec
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import ConfigMap, Namespace, Service, ServiceAccount
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from coolcoding.sandbox.kubernetes import datastores
from coolcoding.sandbox.kubernetes.objects import (
    API_SELECTOR,
    PART_OF,
    NetworkConfig,
    make_network_policies,
)
from coolcoding.sandbox.kubernetes.parts import (
    API,
    CONFIG,
    SECRETS,
    Manifest,
    meta,
    restricted_security,
)
from coolcoding.sandbox.kubernetes.values import Values

API_PORT = 8000
API_UID = 10001
HEALTH_PATH = "/api/health/"  # api/routes/health.py


def namespace(v: Values) -> Namespace:
    # The admission controller enforces the restricted standard on every pod of the namespace.
    labels = {PART_OF: "coolcoding", "pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}  # fmt: skip
    return Namespace(metadata=ObjectMeta(name=v.namespace, labels=labels))


def rbac(v: Values) -> list[Manifest]:
    """The API's identity: pods (with exec and logs) and volume claims in its namespace only."""
    rules = [
        PolicyRule(apiGroups=[""], resources=["pods"],
                   verbs=["get", "list", "watch", "create", "delete", "patch"]),
        PolicyRule(apiGroups=[""], resources=["pods/exec"], verbs=["create", "get"]),
        PolicyRule(apiGroups=[""], resources=["pods/log"], verbs=["get"]),
        PolicyRule(apiGroups=[""], resources=["persistentvolumeclaims"],
                   verbs=["get", "list", "watch", "create", "delete", "patch"]),
    ]  # fmt: skip
    return [
        ServiceAccount(metadata=meta(v, API)),
        Role(metadata=meta(v, API), rules=rules),
        RoleBinding(
            metadata=meta(v, API),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name=API),
            subjects=[Subject(kind="ServiceAccount", name=API, namespace=v.namespace)],
        ),
    ]


def config_map(v: Values) -> ConfigMap:
    s = v.sandboxes
    data = {
        "COOLCODING_ENVIRONMENT": v.environment,
        "COOLCODING_HOST": "0.0.0.0",
        "COOLCODING_PORT": str(API_PORT),
        "COOLCODING_DATA_DIR": "/var/lib/coolcoding",
        "COOLCODING_COOKIE_SECURE": "true" if v.cookie_secure else "false",
        "COOLCODING_RUNTIME": "kubernetes",
        "COOLCODING_K8S_NAMESPACE": v.namespace,
        "COOLCODING_K8S_SANDBOX_IMAGE": s.image,
        "COOLCODING_K8S_WORKSPACE_SIZE": s.workspace_size,
        "COOLCODING_K8S_STORAGE_CLASS": s.storage_class,
        "COOLCODING_K8S_RUNTIME_CLASS": s.runtime_class,
        "COOLCODING_K8S_WARM_POOL_SIZE": str(s.warm_pool_size),
        "COOLCODING_K8S_AGENT_PORT": str(s.agent_port),
        "COOLCODING_SANDBOX_MEMORY_MB": str(s.memory_mb),
        "COOLCODING_SANDBOX_CPUS": str(s.cpus),
        # A cold pod start includes scheduling, volume provisioning and maybe an image pull.
        "COOLCODING_SANDBOX_START_TIMEOUT_S": "180",
        "COOLCODING_K8S_POD_START_TIMEOUT_S": "170",
    }
    if v.public_origins:
        data["COOLCODING_PUBLIC_ORIGINS"] = _json_list(v.public_origins)
    if v.database.mode == "in-cluster":
        data["PGHOST"] = datastores.POSTGRES
    if v.redis.mode == "in-cluster":
        data["COOLCODING_REDIS_URL"] = f"redis://{datastores.REDIS}:6379/0"
    data.update(v.settings)
    return ConfigMap(metadata=meta(v, CONFIG), data=dict(sorted(data.items())))


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


def api_deployment(v: Values) -> Deployment:
    pod_sc, sc = restricted_security(API_UID)
    health = HTTPGetAction(path=HEALTH_PATH, port="http")
    container = Container(
        name="api",
        image=v.image,
        imagePullPolicy=v.image_pull_policy,
        args=["serve"],
        ports=[ContainerPort(name="http", containerPort=API_PORT, protocol="TCP")],
        envFrom=[EnvFromSource(configMapRef=ConfigMapEnvSource(name=CONFIG)),
                 EnvFromSource(secretRef=SecretEnvSource(name=SECRETS))],
        env=[
            EnvVar(name="POD_IP", valueFrom=EnvVarSource(
                fieldRef=ObjectFieldSelector(fieldPath="status.podIP"))),
            # Replicas: this pod's own address, stored with its leases.
            EnvVar(name="COOLCODING_REPLICA_ADDRESS", value=f"http://$(POD_IP):{API_PORT}"),
        ],
        resources=ResourceRequirements(
            requests={"cpu": v.resources.cpu_request, "memory": v.resources.memory_request},
            limits={"cpu": v.resources.cpu_limit, "memory": v.resources.memory_limit},
        ),
        # Start-up runs migrations; readiness takes a replica out of the Service while its
        # database is unreachable (503); liveness restarts only a replica stuck for a minute.
        startupProbe=Probe(httpGet=health, periodSeconds=5, failureThreshold=60, timeoutSeconds=5),
        readinessProbe=Probe(httpGet=health, periodSeconds=5, failureThreshold=2, timeoutSeconds=5),
        livenessProbe=Probe(httpGet=health, periodSeconds=20, failureThreshold=3, timeoutSeconds=10),
        securityContext=sc,
        volumeMounts=[VolumeMount(name="data", mountPath="/var/lib/coolcoding"),
                      VolumeMount(name="tmp", mountPath="/tmp")],
    )  # fmt: skip
    template = PodTemplateSpec(
        metadata=ObjectMeta(labels={PART_OF: "coolcoding", **API_SELECTOR}),
        spec=PodSpec(
            serviceAccountName=API,
            automountServiceAccountToken=True,  # the runtime talks to the Kubernetes API
            enableServiceLinks=False,
            securityContext=pod_sc,
            terminationGracePeriodSeconds=30,
            containers=[container],
            volumes=[Volume(name="data", emptyDir=EmptyDirVolumeSource(sizeLimit="1Gi")),
                     Volume(name="tmp", emptyDir=EmptyDirVolumeSource(sizeLimit="256Mi"))],
        ),
    )  # fmt: skip
    return Deployment(
        metadata=meta(v, API, **API_SELECTOR),
        spec=DeploymentSpec(
            replicas=v.autoscaling.min_replicas,
            selector=LabelSelector(matchLabels=dict(API_SELECTOR)),
            strategy=DeploymentStrategy(type="RollingUpdate", rollingUpdate=RollingUpdateDeployment(
                maxSurge="25%", maxUnavailable=0)),
            template=template,
        ),
    )  # fmt: skip


def autoscaler(v: Values) -> HorizontalPodAutoscaler:
    a = v.autoscaling

    def util(name: str, percent: int) -> MetricSpec:
        return MetricSpec(type="Resource", resource=ResourceMetricSource(
            name=name, target=MetricTarget(type="Utilization", averageUtilization=percent)))  # fmt: skip

    behavior = HorizontalPodAutoscalerBehavior(
        # Aggressive scale-up: double, or 4 more pods, every 15 s, no stabilization.
        scaleUp=HPAScalingRules(stabilizationWindowSeconds=0, selectPolicy="Max", policies=[
            HPAScalingPolicy(type="Percent", value=100, periodSeconds=15),
            HPAScalingPolicy(type="Pods", value=4, periodSeconds=15)]),
        scaleDown=HPAScalingRules(stabilizationWindowSeconds=a.scale_down_stabilization_s,
                                  policies=[HPAScalingPolicy(type="Percent", value=50,
                                                             periodSeconds=60)]),
    )  # fmt: skip
    return HorizontalPodAutoscaler(
        metadata=meta(v, API),
        spec=HorizontalPodAutoscalerSpec(
            scaleTargetRef=ScaleTarget(apiVersion="apps/v1", kind="Deployment", name=API),
            minReplicas=a.min_replicas,
            maxReplicas=a.max_replicas,
            metrics=[util("cpu", a.cpu_percent), util("memory", a.memory_percent)],
            behavior=behavior,
        ),
    )


def disruption_budget(v: Values) -> PodDisruptionBudget:
    return PodDisruptionBudget(
        metadata=meta(v, API),
        spec=PodDisruptionBudgetSpec(
            minAvailable=1, selector=LabelSelector(matchLabels=dict(API_SELECTOR))
        ),
    )


def service(v: Values) -> Service:
    return Service(
        metadata=meta(v, API),
        spec=ServiceSpec(
            type=v.service_type,
            selector=dict(API_SELECTOR),
            ports=[ServicePort(name="http", port=80, targetPort="http", protocol="TCP")],
        ),
    )


def render(v: Values) -> dict[str, list[Manifest]]:
    """Every object of the deployment, grouped by the file it is written to."""
    s = v.sandboxes
    blocked = [*v.database.cidrs, *v.redis.cidrs]
    net = NetworkConfig(namespace=v.namespace, agent_port=s.agent_port,
                        blocked_cidrs=tuple(s.blocked_cidrs), extra_blocked_cidrs=tuple(blocked),
                        dns_namespace=s.dns_namespace)  # fmt: skip
    files: dict[str, list[Manifest]] = {
        "namespace.yaml": [namespace(v)],
        "rbac.yaml": rbac(v),
        "config.yaml": [config_map(v)],
        "api.yaml": [api_deployment(v), service(v), autoscaler(v), disruption_budget(v)],
        "network-policies.yaml": [*make_network_policies(net), *datastores.policies(v)],
    }
    stores = datastores.render(v)
    if stores:
        files["datastores.yaml"] = stores
    return files


def kustomization(files: list[str], namespace_name: str) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "namespace": namespace_name, "resources": files}  # fmt: skip
