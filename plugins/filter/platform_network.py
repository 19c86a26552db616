"""The network policy of a namespace where the platform's workloads run (the serving namespace,
and every team's): nothing in or out but what serving and training need. In: requests from the
inference-gateway (which checks the token) and Prometheus's scrapes. Out: DNS, the object store
(models, datasets) and MLflow (the registry). Downloads from the internet are refused.

``peers`` names them: inference_gateway {namespace, labels}, monitoring_namespace, model_port,
agent_port (KServe's agent, which stands in front of the model server of an InferenceService
that logs its requests: its predictor Service then targets that port), metrics_ports, tracking
{namespace, labels, port}, object_store {peers, port}.
"""

from __future__ import annotations

import json


def _namespace(name):
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def workload_policies(namespace, peers, labels):
    peers, labels = json.loads(json.dumps([peers, labels]))
    gateway, tracking, store = peers["inference_gateway"], peers["tracking"], peers["object_store"]

    def policy(name, spec):
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}

    return [
        policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy("allow-dns", {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{**_namespace("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }),
        policy("allow-inference", {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{**_namespace(gateway["namespace"]), "podSelector": {"matchLabels": gateway["labels"]}}],
                 "ports": [{"protocol": "TCP", "port": int(port)} for port in [peers["model_port"]] + ([peers["agent_port"]] if peers.get("agent_port") else [])]},
                {"from": [_namespace(peers["monitoring_namespace"])],
                 "ports": [{"protocol": "TCP", "port": int(p)} for p in peers["metrics_ports"]]},
            ],
        }),
        policy("allow-models-and-registry", {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": store["peers"], "ports": [{"protocol": "TCP", "port": int(store["port"])}]},
                {"to": [{**_namespace(tracking["namespace"]), "podSelector": {"matchLabels": tracking["labels"]}}],
                 "ports": [{"protocol": "TCP", "port": int(tracking["port"])}]},
            ],
        }),
    ]


class FilterModule:
    def filters(self):
        return {"platform_workload_policies": workload_policies}
