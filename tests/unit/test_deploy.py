"""deploy/ cannot run here (no cloud, no Kubernetes), so it is checked for what can be checked: the
``ray up`` file against the autoscaler schema that ships in the Ray wheel, and the KubeRay RayJob
manifest's fields against the ones the KubeRay API reference (ray.io/v1) names. Both install mlauto on
every node and point it at object storage and a tracking server."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# Fields of the KubeRay v1 API (https://ray-project.github.io/kuberay/reference/api/, ray.io/v1):
# RayJobSpec, RayClusterSpec, HeadGroupSpec and WorkerGroupSpec. A field outside these is a typo
# the API server would drop or refuse.
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
               "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
               "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
               "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend"}
RAYCLUSTER_SPEC = {"authOptions", "suspend", "managedBy", "autoscalerOptions", "headServiceAnnotations",
                   "enableInTreeAutoscaling", "gcsFaultToleranceOptions", "headGroupSpec", "rayVersion",
                   "workerGroupSpecs"}
HEAD_GROUP_SPEC = {"template", "headService", "enableIngress", "rayStartParams", "serviceType"}
WORKER_GROUP_SPEC = {"suspend", "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds",
                     "rayStartParams", "template", "scaleStrategy", "numOfHosts"}


def _autoscaler_schema() -> dict:
    """The schema ``ray up`` validates with, from the installed Ray wheel (found, not imported)."""
    import importlib.util

    origin = importlib.util.find_spec("ray").origin
    return json.loads((Path(origin).parent / "autoscaler" / "ray-schema.json").read_text())


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_ray_up_file_matches_the_autoscaler_schema() -> None:
    schema = _autoscaler_schema()
    config = _load("ray-cluster.yaml")
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    commands = " ".join(config["setup_commands"])
    assert "pip install" in commands and "mlauto-" in commands  # mlauto on every node
    head = " ".join(config["head_start_ray_commands"])
    assert "mlauto.track.server" in head and "--root s3://" in head  # tracking server, artifacts in S3
    assert "mlauto.io/role=head" in head and "mlauto.io/role=worker" in " ".join(config["worker_start_ray_commands"])


def test_ray_up_schema_check_catches_a_typo() -> None:
    schema = _autoscaler_schema()
    config = _load("ray-cluster.yaml")
    config["max_worker"] = config.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


def test_rayjob_manifest_uses_kuberay_v1_fields() -> None:
    job = _load("rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC, set(cluster) - RAYCLUSTER_SPEC
    assert set(cluster["headGroupSpec"]) <= HEAD_GROUP_SPEC
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP_SPEC, set(group) - WORKER_GROUP_SPEC
        assert group["rayStartParams"]["labels"] == "mlauto.io/role=worker"
    assert spec["submissionMode"] in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
    assert all(isinstance(v, str) for v in cluster["headGroupSpec"]["rayStartParams"].values())  # a string map
    yaml.safe_load(spec["runtimeEnvYAML"])  # a YAML string, as the field wants
    entry = spec["entrypoint"]
    assert "root=s3://" in entry and "tracking=server" in entry and "tracking.uri=http://" in entry
    assert cluster["rayVersion"].startswith(ray_version()[:4])


def ray_version() -> str:
    from importlib.metadata import version

    return version("ray")
