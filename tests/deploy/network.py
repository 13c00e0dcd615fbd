"""What the NetworkPolicies let through, computed offline.

Every pod the rendered objects lead to (workloads, and the pods the operators
create) and a few endpoints outside them are put against every policy with the
semantics of networking.k8s.io/v1: a pod no policy selects for a direction is
open in that direction; a selected pod admits only what a rule of a selecting
policy allows; a connection needs both the sender's egress and the receiver's
ingress. The outcome is the set of (from, to, port) that can connect, which the
tests compare with the flows the design allows, exactly.
"""

import ipaddress

from tests.deploy.manifests import Pod, Port, by_kind, matches, pods

# Who else is on the network. Their namespaces and labels are the defaults of
# their installers (README); the internet and the API server are addresses,
# which only ipBlock rules and rules without peers reach. The last one stands
# for any unrelated pod, so an over-broad rule shows up as a flow to or from it.
OUTSIDE = (
    Pod("the internet", None, ports=(Port(80), Port(443)), ip="203.0.113.10"),
    Pod("the Kubernetes API", None, ports=(Port(443), Port(6443)), ip="172.18.0.2"),
    Pod("cluster DNS", "kube-system", {"k8s-app": "kube-dns"}, (Port(53, "UDP"), Port(53, "TCP"))),
    Pod("Prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Pod("CloudNativePG operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}),
    Pod("RabbitMQ operator", "rabbitmq-system", {"app.kubernetes.io/name": "rabbitmq-cluster-operator"}),
    Pod("KEDA operator", "keda", {"app.kubernetes.io/name": "keda-operator"}),
    Pod("a pod elsewhere", "elsewhere", {"app.kubernetes.io/name": "unrelated"}, (Port(8080),)),
)


def coverage_problems(objects) -> list[str]:
    """Every pod must be restricted both ways: a pod no policy selects for a
    direction is open to (or may reach) anything in that direction."""
    policies = by_kind(objects, "NetworkPolicy")
    return [
        f"{pod.owner}: no NetworkPolicy restricts its {direction.lower()}"
        for pod in pods(objects)
        for direction in ("Ingress", "Egress")
        if not _selecting(policies, pod, direction)
    ]


def allowed_flows(objects) -> set[tuple[str, str, str]]:
    policies = by_kind(objects, "NetworkPolicy")
    namespace_labels = {
        obj["metadata"]["name"]: obj["metadata"].get("labels", {}) for obj in by_kind(objects, "Namespace")
    }
    everyone = [*pods(objects), *OUTSIDE]
    flows = set()
    for source in everyone:
        for destination in everyone:
            if source in OUTSIDE and destination in OUTSIDE:
                continue
            for port in destination.ports:
                if _permits(policies, source, destination, port, "Egress", namespace_labels) and _permits(
                    policies, destination, source, port, "Ingress", namespace_labels
                ):
                    flows.add((source.name, destination.name, str(port)))
    return flows


def _selecting(policies, pod: Pod, direction: str) -> list[dict]:
    return [
        policy
        for policy in policies
        if policy["metadata"].get("namespace") == pod.namespace
        and pod.ip is None
        and direction in _policy_types(policy)
        and matches(policy["spec"]["podSelector"], pod.labels)
    ]


def _policy_types(policy: dict) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _permits(policies, subject: Pod, peer: Pod, port: Port, direction: str, namespace_labels) -> bool:
    """Whether `subject`'s policies let it talk to `peer` (Egress) or hear from
    it (Ingress), on `port` of the receiving end."""
    selecting = _selecting(policies, subject, direction)
    if not selecting:
        return True
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any(
        _ports_match(rule.get("ports"), port)
        and _peers_match(rule.get(peers_key), policy["metadata"].get("namespace"), peer, namespace_labels)
        for policy in selecting
        for rule in policy["spec"].get(rules_key, [])
    )


def _ports_match(ports, port: Port) -> bool:
    if not ports:
        return True
    for allowed in ports:
        if allowed.get("protocol", "TCP") != port.protocol:
            continue
        value = allowed.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            if value == port.name:
                return True
        elif value <= port.number <= allowed.get("endPort", value):
            return True
    return False


def _peers_match(peers, policy_namespace, peer: Pod, namespace_labels) -> bool:
    if not peers:
        return True
    for entry in peers:
        if "ipBlock" in entry:
            if peer.ip and _in_block(peer.ip, entry["ipBlock"]):
                return True
            continue
        if peer.ip is not None:  # selectors choose pods, never outside addresses
            continue
        if "namespaceSelector" in entry:
            labels = {"kubernetes.io/metadata.name": peer.namespace, **namespace_labels.get(peer.namespace, {})}
            namespace_ok = matches(entry["namespaceSelector"], labels)
        else:
            namespace_ok = peer.namespace == policy_namespace
        if namespace_ok and matches(entry.get("podSelector", {}), peer.labels):
            return True
    return False


def _in_block(ip: str, block: dict) -> bool:
    address = ipaddress.ip_address(ip)
    return address in ipaddress.ip_network(block["cidr"]) and not any(
        address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
    )
