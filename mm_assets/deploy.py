"""Deployment profiles: ``local`` (the default) and ``k8s`` (scale-out).

``local``
    :data:`mm_assets.definitions.defs` unchanged: multiprocess executor, the SQLite instance at
    ``$DAGSTER_HOME``, storage under ``$MM_ASSETS_ROOT`` (a folder or ``s3://``).
``k8s``
    The same assets, jobs, sensors and resources with ``dagster_k8s.k8s_job_executor``: one
    Kubernetes Job (one pod) per step. GPU limits come from the model assets' op tags
    (:data:`mm_assets.partitions.GPU_TAGS`, ``dagster-k8s/config``), which the executor merges
    into those steps' pods; this profile adds a toleration for GPU nodes to exactly those steps
    and CPU/memory requests to every step. The instance side (Postgres storage, the
    ``K8sRunLauncher``, queued runs) is ``deploy/dagster.yaml``; the code location is
    ``deploy/workspace.yaml`` (attribute :data:`k8s_defs`). Storage must be shared by all pods:
    set ``MM_ASSETS_ROOT=s3://bucket/prefix`` (and ``MM_ASSETS_S3_ENDPOINT`` for an
    S3-compatible store) in the ``mm-assets-env`` ConfigMap that every step pod reads.

Nothing here reads the environment or needs a cluster at import time: the executor loads the
in-cluster Kubernetes config only when a run starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from dagster import AssetsDefinition, Definitions, ExecutorDefinition

PROFILES = ("local", "k8s")
K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_RESOURCE = "nvidia.com/gpu"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9.]+(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


@dataclass(frozen=True, slots=True)
class K8sProfile:
    """Cluster-side settings of the ``k8s`` profile.

    Attributes:
        namespace: namespace the step Jobs run in (DNS label).
        image: step pod image; ``None`` uses the code location's image (Helm user deployment).
        env_config_maps: ConfigMaps exposed to step pods as variables: ``MM_ASSETS_ROOT``
            (``s3://...``), ``MM_ASSETS_S3_ENDPOINT``, ``AWS_DEFAULT_REGION``, ``HF_HUB_OFFLINE``.
        env_secrets: Secrets exposed to step pods as variables (``AWS_ACCESS_KEY_ID``, ...).
        env_vars: extra ``NAME=value`` entries, or ``NAME`` to copy from the run pod (a bare
            name that is unset there fails the step launch, so prefer the ConfigMap).
        step_cpu: CPU request of every step pod (Kubernetes quantity, e.g. ``"2"``, ``"500m"``).
        step_memory: memory request of every step pod (e.g. ``"8Gi"``).
        gpu_taint: taint key of GPU nodes; GPU steps tolerate it (``""``: no toleration).
        max_concurrent: step pods running at once per run (0: no limit).
    """

    namespace: str = "mm-assets"
    image: str | None = None
    env_config_maps: tuple[str, ...] = ("mm-assets-env",)
    env_secrets: tuple[str, ...] = ("mm-assets-s3",)
    env_vars: tuple[str, ...] = ()
    step_cpu: str = "2"
    step_memory: str = "8Gi"
    gpu_taint: str = GPU_RESOURCE
    max_concurrent: int = 0

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a Kubernetes DNS label")
        for name, value in (("step_cpu", self.step_cpu), ("step_memory", self.step_memory)):
            if not _QUANTITY.match(value):
                raise ValueError(f"{name}={value!r} is not a Kubernetes quantity")
        if self.max_concurrent < 0:
            raise ValueError(f"max_concurrent must be >= 0, got {self.max_concurrent}")


def gpu_limit(op_tags: dict[str, Any]) -> str | None:
    """The ``nvidia.com/gpu`` limit an op's ``dagster-k8s/config`` tag asks for, if any."""
    raw = op_tags.get(K8S_CONFIG_TAG)
    if raw is None:
        return None
    cfg = json.loads(raw) if isinstance(raw, str) else raw
    limits = cfg.get("container_config", {}).get("resources", {}).get("limits", {})
    return limits.get(GPU_RESOURCE)


def gpu_ops(assets: list[AssetsDefinition]) -> list[str]:
    """Names of the ops (one per asset here) whose tags request a GPU, sorted."""
    return sorted({a.op.name for a in assets if gpu_limit(dict(a.op.tags))})


def executor_config(profile: K8sProfile, gpu_op_names: list[str]) -> dict[str, Any]:
    """Run config of ``k8s_job_executor`` for ``profile`` (validated by Dagster at launch).

    Every step gets the CPU/memory requests; the GPU steps also tolerate the GPU taint. Their
    GPU *limit* is not set here: it comes from each op's ``dagster-k8s/config`` tag.
    """
    step: dict[str, Any] = {"container_config": {"resources": {"requests": {
        "cpu": profile.step_cpu, "memory": profile.step_memory}}}}
    per_step = {}
    if profile.gpu_taint:
        toleration = {"key": profile.gpu_taint, "operator": "Exists", "effect": "NoSchedule"}
        per_step = {op: {"pod_spec_config": {"tolerations": [toleration]}}
                    for op in gpu_op_names}
    cfg: dict[str, Any] = {"job_namespace": profile.namespace,
                           "env_config_maps": list(profile.env_config_maps),
                           "env_secrets": list(profile.env_secrets),
                           "env_vars": list(profile.env_vars),
                           "step_k8s_config": step, "per_step_k8s_config": per_step}
    if profile.image:
        cfg["job_image"] = profile.image
    if profile.max_concurrent:
        cfg["max_concurrent"] = profile.max_concurrent
    return cfg


def k8s_executor(profile: K8sProfile, gpu_op_names: list[str]) -> ExecutorDefinition:
    """``k8s_job_executor`` configured for ``profile``: one Kubernetes Job per step."""
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(executor_config(profile, gpu_op_names),
                                       name="mm_assets_k8s")


def build_definitions(profile: Literal["local", "k8s"] = "local",
                      k8s: K8sProfile | None = None) -> Definitions:
    """The code location for a deployment profile.

    Raises:
        ValueError: unknown profile.
    """
    from mm_assets.definitions import ALL_ASSETS, defs

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {PROFILES}")
    if profile == "local":
        return defs
    executor = k8s_executor(k8s or K8sProfile(), gpu_ops(ALL_ASSETS))
    return Definitions.merge(defs, Definitions(executor=executor))


def preview_step_job(profile: K8sProfile, op_name: str, step_tags: dict[str, str],
                     image: str = "mm-assets:latest"):
    """The Kubernetes Job the ``k8s`` executor would create for one step, built offline.

    Mirrors ``dagster_k8s.executor.K8sStepHandler``: the executor's container context, merged
    with the step's ``dagster-k8s/config`` tag, then this profile's per-op override, rendered by
    ``construct_dagster_k8s_job``. The run launcher's own settings (instance ConfigMap, its
    secrets) are not included. Useful to review pods (``kubectl``-style YAML) before a launch.

    Args:
        profile: cluster-side settings.
        op_name: the step's op (asset) name.
        step_tags: the step's tags, as Dagster stores them (JSON strings).
        image: image used when the profile names none.

    Returns:
        kubernetes.client.V1Job
    """
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_k8s_job_name,
        get_user_defined_k8s_config,
    )

    from mm_assets.definitions import ALL_ASSETS

    cfg = executor_config(profile, gpu_ops(ALL_ASSETS))
    base = K8sContainerContext(
        env_config_maps=cfg["env_config_maps"], env_secrets=cfg["env_secrets"],
        env_vars=cfg["env_vars"], namespace=cfg["job_namespace"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(cfg["step_k8s_config"]))
    context = base.merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags))).merge(
        K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            cfg["per_step_k8s_config"].get(op_name, {}))))
    job_config = DagsterK8sJobConfig(job_image=cfg.get("job_image", image),
                                     dagster_home="/opt/dagster/dagster_home")
    name = f"dagster-step-{get_k8s_job_name('preview', op_name)}"
    return construct_dagster_k8s_job(job_config, args=["dagster", "api", "execute_step"],
                                     job_name=name, component="step_worker",
                                     user_defined_k8s_config=context.run_k8s_config,
                                     labels={"dagster/op": op_name})


k8s_defs = build_definitions("k8s")
