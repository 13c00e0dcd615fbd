"""The deployment's own rules: what the design promises and no generic linter
knows. (checkov enforces the container hardening; see test_manifests.py.)

Workloads are told apart by their app.kubernetes.io/component label: gateway,
web, worker, relay, migration.
"""

import re

from kong import settings as kong_env
from tests.deploy.manifests import by_kind, containers, describe, matches, pod_spec, pod_template

SERVICES = ("users", "products", "orders")
# Whoever may read the jwt secret: the issuer, its migration (users' create_app
# insists on it) and the init container that renders Kong's config.
JWT_SECRET_READERS = {("Deployment/users", "app"), ("Deployment/kong", "render-config")}
# secretGenerator appends a hash to the name.
_JWT_SECRET_NAME = re.compile(r"^shop-jwt(-[a-z0-9]{10})?$")


def component(obj: dict) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def disruption_budgets(objects):
    """Every Deployment's pods fall under exactly one PodDisruptionBudget (with
    two, the eviction API refuses to evict them at all)."""
    budgets = by_kind(objects, "PodDisruptionBudget")
    for deployment in by_kind(objects, "Deployment"):
        labels = pod_template(deployment)["metadata"]["labels"]
        covering = [b for b in budgets if matches(b["spec"].get("selector"), labels)]
        if len(covering) != 1:
            yield f"{describe(deployment)}: {len(covering)} PodDisruptionBudgets select its pods, not 1"


def topology_spread(objects):
    """Every Deployment spreads its replicas over zones and over nodes."""
    for deployment in by_kind(objects, "Deployment"):
        template = pod_template(deployment)
        keys = {
            c["topologyKey"]
            for c in template["spec"].get("topologySpreadConstraints", [])
            if matches(c.get("labelSelector"), template["metadata"]["labels"])
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
            if key not in keys:
                yield f"{describe(deployment)}: its pods don't spread over {key}"


def probes(objects):
    """Long-running containers say when they have started, are alive and are
    ready, and their pods say how long a graceful stop may take."""
    for obj in by_kind(objects, "Deployment", "StatefulSet"):
        spec = pod_spec(obj)
        if "terminationGracePeriodSeconds" not in spec:
            yield f"{describe(obj)}: no terminationGracePeriodSeconds"
        for container in spec["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    yield f"{describe(obj)} container {container['name']}: no {probe}"


def gateway(objects):
    """Kong's Admin API (POST /config replaces the gateway, GET /config shows the
    jwt secret) listens on the pod's loopback only, and Kong reads its rendered
    config read-only from memory."""
    for deployment in [d for d in by_kind(objects, "Deployment") if component(d) == "gateway"]:
        spec = pod_spec(deployment)
        memory_volumes = {v["name"] for v in spec.get("volumes", []) if v.get("emptyDir", {}).get("medium") == "Memory"}
        for container in [c for c in spec["containers"] if c["image"].startswith("kong:")]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            admin = env.get("KONG_ADMIN_LISTEN") or ""
            addresses = [part.strip().split()[0] for part in admin.split(",") if part.strip()]
            if admin != "off" and (not addresses or any(not a.startswith("127.0.0.1:") for a in addresses)):
                yield f"{describe(deployment)}: KONG_ADMIN_LISTEN {admin!r} is reachable from outside the pod"
            if env.get("KONG_ADMIN_GUI_LISTEN") != "off":
                yield f"{describe(deployment)}: KONG_ADMIN_GUI_LISTEN is not off"
            config_dir = (env.get("KONG_DECLARATIVE_CONFIG") or "").rsplit("/", 1)[0]
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            mount = mounts.get(config_dir)
            if not mount or not mount.get("readOnly") or mount["name"] not in memory_volumes:
                yield f"{describe(deployment)}: Kong doesn't read its config read-only from a memory volume"


# What Kubernetes sets beyond kong/kong.env, and why: where the rendered config and
# Kong's writable prefix are (emptyDirs), and one nginx worker per CPU of the
# pod's limit, where kong/kong.env's one worker is for a machine Kong shares
# with everything else.
KONG_KUBERNETES_ONLY = {"KONG_DECLARATIVE_CONFIG", "KONG_PREFIX", "KONG_NGINX_WORKER_PROCESSES"}


def kong_settings(objects):
    """Kong runs with kong/kong.env's settings, the ones compose and the native
    stack use, and nothing else but KONG_KUBERNETES_ONLY."""
    wanted = kong_env.load()
    for deployment in [d for d in by_kind(objects, "Deployment") if component(d) == "gateway"]:
        for container in [c for c in pod_spec(deployment)["containers"] if c["image"].startswith("kong:")]:
            env = {e["name"]: e.get("value") for e in container.get("env", []) if e["name"].startswith("KONG_")}
            for name, value in wanted.items():
                if env.get(name) != value and name not in KONG_KUBERNETES_ONLY:
                    yield f"{describe(deployment)}: {name} is {env.get(name)!r}, not kong/kong.env's {value!r}"
            for name in sorted(set(env) - set(wanted) - KONG_KUBERNETES_ONLY):
                yield f"{describe(deployment)}: {name} is set here only, not in kong/kong.env"


def jwt_secret(objects):
    """The jwt secret signs every identity: it reaches its readers and no one else."""
    readers = set()
    for obj in objects:
        spec = pod_spec(obj)
        for container in containers(spec) if spec else []:
            names = [e.get("valueFrom", {}).get("secretKeyRef", {}).get("name", "") for e in container.get("env", [])]
            names += [s.get("secretRef", {}).get("name", "") for s in container.get("envFrom", [])]
            if any(_JWT_SECRET_NAME.match(name) for name in names):
                readers.add((describe(obj), container["name"]))
    for reader in sorted(readers - JWT_SECRET_READERS):
        yield f"{reader[0]} container {reader[1]} reads the jwt secret"
    for reader in sorted(JWT_SECRET_READERS - readers):
        yield f"{reader[0]} container {reader[1]} doesn't get the jwt secret"


def migrations(objects):
    """Each service's schema is migrated by its Job, exactly once per release;
    no long-running pod migrates on start."""
    for service in SERVICES:
        jobs = [
            job
            for job in by_kind(objects, "Job")
            if any(_command(c) == ["python", "-m", "common.migrate", service] for c in pod_spec(job)["containers"])
        ]
        if len(jobs) != 1:
            yield f"{service}: {len(jobs)} migration Jobs, not 1"
    for obj in by_kind(objects, "Deployment", "StatefulSet"):
        for container in containers(pod_spec(obj)):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            command = _command(container)
            if env.get("MIGRATE") == "1" or (
                command[:3] == ["python", "-m", "common.migrate"] and "--wait" not in command
            ):
                yield f"{describe(obj)} container {container['name']} migrates"


def scaling(objects):
    """Kong runs at least two replicas, each web service scales on CPU, each
    relay runs exactly two (SKIP LOCKED keeps them apart) and, where KEDA is
    used, each worker scales on its queue, never below one."""
    deployments = by_kind(objects, "Deployment")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objects, "HorizontalPodAutoscaler")}
    scaled_objects = {s["spec"]["scaleTargetRef"]["name"]: s for s in by_kind(objects, "ScaledObject")}
    for deployment in deployments:
        name, role, replicas = deployment["metadata"]["name"], component(deployment), deployment["spec"].get("replicas")
        if role == "gateway" and (replicas or 1) < 2:
            yield f"{describe(deployment)}: {replicas} replicas, fewer than 2"
        if role == "relay" and (replicas != 2 or name in hpas or name in scaled_objects):
            yield f"{describe(deployment)}: not exactly 2 fixed replicas"
        if role == "web":
            metrics = hpas.get(name, {}).get("spec", {}).get("metrics", [])
            if not any(m.get("resource", {}).get("name") == "cpu" for m in metrics):
                yield f"{describe(deployment)}: no HorizontalPodAutoscaler on CPU"
        if role == "worker" and scaled_objects:
            scaler = scaled_objects.get(name, {}).get("spec", {})
            if scaler.get("minReplicaCount", 0) < 1 or not any(
                t["type"] == "rabbitmq" for t in scaler.get("triggers", [])
            ):
                yield f"{describe(deployment)}: no ScaledObject on its queue with at least 1 replica"
        if role in ("web", "worker") and replicas is not None:
            yield f"{describe(deployment)}: sets replicas, which its autoscaler owns"


RULES = {
    rule.__name__: rule
    for rule in (disruption_budgets, topology_spread, probes, gateway, kong_settings, jwt_secret, migrations, scaling)
}


def _command(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]
