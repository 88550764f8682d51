"""In-cluster PostgreSQL and Redis (values ``database.mode`` / ``redis.mode`` = ``in-cluster``),
each reachable from the API pods only, and the Secret the deployment needs.

For production, prefer a managed database (``external``): this is one PostgreSQL pod without
replication or backups, fine for a small installation or a trial.
"""

from __future__ import annotations

import secrets as random_secrets

from lightkube.models.apps_v1 import DeploymentSpec, StatefulSetSpec
from lightkube.models.core_v1 import (
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    EnvVar,
    EnvVarSource,
    ExecAction,
    PersistentVolumeClaimSpec,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    SecretKeySelector,
    ServicePort,
    ServiceSpec,
    Volume,
    VolumeMount,
    VolumeResourceRequirements,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.models.networking_v1 import (
    NetworkPolicyIngressRule,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicySpec,
)
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import PersistentVolumeClaim, Secret, Service
from lightkube.resources.networking_v1 import NetworkPolicy

from coolcoding.sandbox.kubernetes.objects import API_SELECTOR, PART_OF
from coolcoding.sandbox.kubernetes.parts import SECRETS, Manifest, meta, restricted_security
from coolcoding.sandbox.kubernetes.values import Values

POSTGRES = "coolcoding-postgres"
REDIS = "coolcoding-redis"
DATASTORE_UID = 999  # the postgres and redis users of the Debian-based official images


def _meta(v: Values, name: str) -> ObjectMeta:
    return meta(v, name, **{"app.kubernetes.io/name": name})


def _template(name: str, container: Container, volumes: list[Volume]) -> PodTemplateSpec:
    pod_sc, sc = restricted_security(DATASTORE_UID)
    container.securityContext = sc
    return PodTemplateSpec(
        metadata=ObjectMeta(labels={PART_OF: "coolcoding", "app.kubernetes.io/name": name}),
        spec=PodSpec(automountServiceAccountToken=False, enableServiceLinks=False,
                     securityContext=pod_sc, containers=[container], volumes=volumes),
    )  # fmt: skip


def _service(v: Values, name: str, port: int) -> Service:
    return Service(metadata=_meta(v, name), spec=ServiceSpec(
        type="ClusterIP", selector={"app.kubernetes.io/name": name},
        ports=[ServicePort(name="main", port=port, targetPort=port, protocol="TCP")]))  # fmt: skip


def postgres(v: Values) -> list[Manifest]:
    d = v.database
    container = Container(
        name="postgres",
        image=d.image,
        env=[
            EnvVar(name="POSTGRES_USER", value="coolcoding"),
            EnvVar(name="POSTGRES_DB", value="coolcoding"),
            EnvVar(name="PGDATA", value="/var/lib/postgresql/data/pgdata"),
            EnvVar(name="POSTGRES_PASSWORD", valueFrom=EnvVarSource(
                secretKeyRef=SecretKeySelector(name="coolcoding-secrets", key="POSTGRES_PASSWORD"))),
        ],
        ports=[ContainerPort(name="main", containerPort=5432, protocol="TCP")],
        readinessProbe=Probe(exec=ExecAction(command=["pg_isready", "-U", "coolcoding"]),
                             periodSeconds=5),
        resources=ResourceRequirements(requests={"cpu": "250m", "memory": "256Mi"},
                                       limits={"cpu": "2", "memory": "1Gi"}),
        volumeMounts=[VolumeMount(name="data", mountPath="/var/lib/postgresql/data"),
                      VolumeMount(name="run", mountPath="/var/run/postgresql"),
                      VolumeMount(name="tmp", mountPath="/tmp")],
    )  # fmt: skip
    claim = PersistentVolumeClaim(
        metadata=ObjectMeta(name="data"),
        spec=PersistentVolumeClaimSpec(accessModes=["ReadWriteOnce"],
                                       storageClassName=d.storage_class or None,
                                       resources=VolumeResourceRequirements(
                                           requests={"storage": d.storage})))  # fmt: skip
    volumes = [Volume(name="run", emptyDir=EmptyDirVolumeSource()),
               Volume(name="tmp", emptyDir=EmptyDirVolumeSource())]  # fmt: skip
    sts = StatefulSet(metadata=_meta(v, POSTGRES), spec=StatefulSetSpec(
        serviceName=POSTGRES, replicas=1,
        selector=LabelSelector(matchLabels={"app.kubernetes.io/name": POSTGRES}),
        template=_template(POSTGRES, container, volumes),
        volumeClaimTemplates=[claim]))  # fmt: skip
    return [sts, _service(v, POSTGRES, 5432)]


def redis(v: Values) -> list[Manifest]:
    # An event bus and rate-limit store: nothing in it outlives a restart that matters.
    container = Container(
        name="redis", image=v.redis.image,
        args=["--save", "", "--appendonly", "no", "--protected-mode", "no"],
        ports=[ContainerPort(name="main", containerPort=6379, protocol="TCP")],
        readinessProbe=Probe(exec=ExecAction(command=["redis-cli", "ping"]), periodSeconds=5),
        resources=ResourceRequirements(requests={"cpu": "100m", "memory": "64Mi"},
                                       limits={"cpu": "1", "memory": "256Mi"}),
        volumeMounts=[VolumeMount(name="data", mountPath="/data")],
    )  # fmt: skip
    volumes = [Volume(name="data", emptyDir=EmptyDirVolumeSource(sizeLimit="64Mi"))]
    dep = Deployment(metadata=_meta(v, REDIS), spec=DeploymentSpec(
        replicas=1, selector=LabelSelector(matchLabels={"app.kubernetes.io/name": REDIS}),
        template=_template(REDIS, container, volumes)))  # fmt: skip
    return [dep, _service(v, REDIS, 6379)]


def render(v: Values) -> list[Manifest]:
    out: list[Manifest] = []
    if v.database.mode == "in-cluster":
        out += postgres(v)
    if v.redis.mode == "in-cluster":
        out += redis(v)
    return out


def policies(v: Values) -> list[NetworkPolicy]:
    """The in-cluster datastores take connections from the API pods only."""
    out = []
    for name, port, on in ((POSTGRES, 5432, v.database.mode == "in-cluster"),
                           (REDIS, 6379, v.redis.mode == "in-cluster")):  # fmt: skip
        if on:
            out.append(NetworkPolicy(metadata=_meta(v, name), spec=NetworkPolicySpec(
                podSelector=LabelSelector(matchLabels={"app.kubernetes.io/name": name}),
                policyTypes=["Ingress"],
                ingress=[NetworkPolicyIngressRule(
                    from_=[NetworkPolicyPeer(podSelector=LabelSelector(
                        matchLabels=dict(API_SELECTOR)))],
                    ports=[NetworkPolicyPort(port=port, protocol="TCP")])])))  # fmt: skip
    return out


def generated_secret(v: Values) -> Secret:
    """The deployment's Secret with fresh random values (``coolcoding deploy secrets``); never
    committed. External database/Redis URLs are set by the operator afterwards."""
    data = {"COOLCODING_K8S_AGENT_KEY": random_secrets.token_urlsafe(48)}
    if v.database.mode == "in-cluster":
        password = random_secrets.token_urlsafe(24)
        data["POSTGRES_PASSWORD"] = password
        data["COOLCODING_DATABASE_URL"] = (
            f"postgresql+asyncpg://coolcoding:{password}@{POSTGRES}:5432/coolcoding"
        )
    else:
        data["COOLCODING_DATABASE_URL"] = "postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB"
    if v.redis.mode == "external":
        data["COOLCODING_REDIS_URL"] = "redis://HOST:6379/0"
    return Secret(metadata=meta(v, SECRETS), type="Opaque", stringData=data)
