"""The direct path's own logic: interrupted Helm releases, first installs, bundle CRDs,
per-release timeouts (plugins/filter/platform_delivery.py), and the one-run wait on a list of
objects and the prune (plugins/module_utils/k8s_wait.py, k8s_prune.py, which
platform_k8s_apply runs)."""

import json
import re

import pytest

import platform_delivery as pd
from ansible_collections.mlplatform.baremetal.plugins.module_utils import k8s_wait as wait
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from kubernetes.dynamic.resource import ResourceInstance

CHARTS = {"metallb": {"repository": "https://metallb.github.io/metallb", "chart": "metallb", "version": "0.16.1"}}


RELEASES = [
    {"name": "metallb", "namespace": "metallb-system", "chart": "metallb"},
    {"name": "cilium", "namespace": "kube-system", "chart": "cilium"},
    {"name": "velero", "namespace": "velero", "chart": "velero"},
    {"name": "loki", "namespace": "monitoring", "chart": "loki"},
]


def listed(*releases):
    """What the layer's one `helm list --all --all-namespaces --output json` prints."""
    return json.dumps(list(releases))


def release(name, status, revision="2", namespace="metallb-system"):
    return {"name": name, "namespace": namespace, "revision": revision, "status": status, "chart": "metallb-0.16.1"}


def test_a_pending_upgrade_names_the_rollback_command():
    (problem,) = pd.pending_releases(RELEASES[:1], listed(release("metallb", "pending-upgrade", "3")), "/state/bin/helm", "/state/admin.conf")
    assert "metallb-system/metallb is pending-upgrade (revision 3)" in problem
    assert "`/state/bin/helm rollback metallb --namespace metallb-system --kubeconfig /state/admin.conf`" in problem


def test_a_pending_install_has_nothing_to_roll_back_to_and_is_uninstalled():
    (problem,) = pd.pending_releases(RELEASES[:1], listed(release("metallb", "pending-install", "1")))
    assert "`helm uninstall metallb --namespace metallb-system`" in problem


def test_deployed_failed_and_missing_releases_are_not_pending():
    output = listed(
        release("metallb", "deployed"),
        release("cilium", "failed", namespace="kube-system"),
        # --filter is a regular expression: a release whose name only contains the declared one is not it.
        release("loki-canary", "pending-install", namespace="monitoring"),
        # Nor is a release of the same name in another namespace.
        release("velero", "pending-upgrade", namespace="backup"),
    )
    assert pd.pending_releases(RELEASES, output) == []


def test_the_pending_check_reads_the_list_once_for_the_whole_layer():
    output = listed(release("metallb", "pending-upgrade", "3"), release("loki", "pending-rollback", "4", namespace="monitoring"))
    problems = pd.pending_releases(RELEASES, output, "helm")
    assert [p.split(" is ")[0] for p in problems] == ["Helm release metallb-system/metallb", "Helm release monitoring/loki"]
    # The task registers nothing when the layer has no releases: an empty list.
    assert pd.pending_releases([], "[]") == [] and pd.installed_releases(RELEASES, "") == []


def test_only_a_release_helm_does_not_hold_is_a_first_install():
    output = listed(
        release("metallb", "failed"),
        release("loki-canary", "deployed", namespace="monitoring"),
        release("cilium", "deployed", namespace="cilium-system"),
    )
    assert pd.installed_releases(RELEASES, output) == ["metallb-system/metallb"]
    assert pd.installed_releases(RELEASES, json.loads(output)) == ["metallb-system/metallb"]


def test_one_helm_list_asks_for_exactly_the_layers_releases():
    pattern = pd.release_filter(RELEASES + [{"name": "kube-prometheus.stack", "namespace": "monitoring"}, RELEASES[0]])
    assert pattern == r"^(cilium|kube\-prometheus\.stack|loki|metallb|velero)$"
    assert re.match(pattern, "loki") and not re.match(pattern, "loki-canary") and not re.match(pattern, "kube-prometheusXstack")


def test_a_bundle_wait_names_only_its_crds():
    text = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gateways.gateway.networking.k8s.io}\n---\n"
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: safe-upgrades.gateway.networking.k8s.io}\n---\n"
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: safe-upgrades.gateway.networking.k8s.io}\n"
    )
    assert pd.crd_names(text) == ["gateways.gateway.networking.k8s.io"]
    assert pd.bundle_ready_checks([text]) == [
        {"api_version": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "name": "gateways.gateway.networking.k8s.io",
         "namespace": None, "condition": {"type": "Established", "status": "True"}, "field": None, "failure": None, "logs": False}
    ]


def test_a_release_timeout_must_be_seconds():
    layer = {"name": "storage", "wave": 30, "releases": [{"name": "metallb", "chart": "metallb", "namespace": "metallb-system", "timeout": "15m"}]}
    assert pd.declaration_problems(layer, CHARTS) == ["layer storage: release metallb has timeout '15m'; it must be a number of seconds"]
    layer["releases"][0]["timeout"] = 1800
    assert pd.declaration_problems(layer, CHARTS) == []


# -- the wait (module_utils/k8s_wait): every readiness signal of a layer in one module run ----------


class FakeClient:
    """client.resource() and client.get() as kubernetes.core's dynamic client answers them, from
    a dict of objects that a test changes between checks; served: the kinds the server knows."""

    def __init__(self, objects, served=("Deployment", "DaemonSet", "CustomResourceDefinition", "Job")):
        self.objects, self.served, self.gets = objects, served, []

    def resource(self, kind, api_version):
        if kind not in self.served:
            raise ResourceNotFoundError(f"{api_version} {kind}")
        return type("Resource", (), {"kind": kind, "api_version": api_version})()

    def get(self, resource, name=None, namespace=None):
        self.gets.append((resource.kind, namespace, name))
        found = self.objects.get((resource.kind, namespace, name))
        if found is None:
            raise NotFoundError(ApiException(status=404, reason="Not Found"))
        return ResourceInstance(self, found)


def deployment(replicas=1, available=None, generation=2, observed=2):
    status = {"observedGeneration": observed, "replicas": replicas}
    if available is not None:
        status["availableReplicas"] = available
    return {"kind": "Deployment", "metadata": {"name": "cilium-operator", "namespace": "kube-system", "generation": generation},
            "spec": {"replicas": replicas}, "status": status}


def crd(established):
    return {"kind": "CustomResourceDefinition", "metadata": {"name": "gateways.gateway.networking.k8s.io"},
            "status": {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                      {"type": "Established", "status": "True" if established else "False", "reason": "Installing",
                                       "message": "the initial names have been accepted"}]}}


OPERATOR = {"api_version": "apps/v1", "kind": "Deployment", "namespace": "kube-system", "name": "cilium-operator", "condition": None}
GATEWAYS = pd.ready_checks({"ready": [{"kind": "CustomResourceDefinition", "name": "gateways.gateway.networking.k8s.io"}]})[0]


class Clock:
    """time.monotonic and time.sleep for wait_all, without waiting."""

    def __init__(self, on_pause=None):
        self.now, self.pauses, self.on_pause = 0.0, [], on_pause

    def __call__(self):
        return self.now

    def pause(self, seconds):
        self.pauses.append(seconds)
        self.now += seconds
        if self.on_pause:
            self.on_pause(len(self.pauses))


def test_ready_objects_are_checked_once_and_nothing_is_waited():
    client = FakeClient({("Deployment", "kube-system", "cilium-operator"): deployment(available=1),
                         ("CustomResourceDefinition", None, "gateways.gateway.networking.k8s.io"): crd(True)})
    clock = Clock()
    assert wait.wait_all(wait.Checker(client), [OPERATOR, GATEWAYS], 600, 1, clock, clock.pause) == (0.0, {})
    assert clock.pauses == [] and len(client.gets) == 2


def test_objects_not_ready_are_polled_every_sleep_until_they_are_and_ready_ones_are_not_read_again():
    objects = {("Deployment", "kube-system", "cilium-operator"): deployment(available=1),
               ("CustomResourceDefinition", None, "gateways.gateway.networking.k8s.io"): crd(False)}
    client = FakeClient(objects)

    def established(pauses):
        if pauses == 3:
            objects[("CustomResourceDefinition", None, "gateways.gateway.networking.k8s.io")] = crd(True)

    clock = Clock(established)
    waited, not_ready = wait.wait_all(wait.Checker(client), [OPERATOR, GATEWAYS], 600, 1, clock, clock.pause)
    assert (waited, not_ready, clock.pauses) == (3.0, {}, [1, 1, 1])
    assert client.gets.count(("Deployment", "kube-system", "cilium-operator")) == 1
    assert client.gets.count(("CustomResourceDefinition", None, "gateways.gateway.networking.k8s.io")) == 4


def test_one_deadline_for_the_whole_list_and_each_object_not_ready_is_named_with_what_it_shows():
    client = FakeClient({("Deployment", "kube-system", "cilium-operator"): deployment(replicas=2, available=1),
                         ("CustomResourceDefinition", None, "gateways.gateway.networking.k8s.io"): crd(False)})
    missing = {"api_version": "apps/v1", "kind": "DaemonSet", "namespace": "kube-system", "name": "cilium"}
    unserved = {"api_version": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "namespace": "serving", "name": "default"}
    clock = Clock()
    waited, not_ready = wait.wait_all(wait.Checker(client), [OPERATOR, GATEWAYS, missing, unserved], 5, 2, clock, clock.pause)
    # 0, 2, 4, then the last 1 s to the deadline: never past it, never more than one deadline.
    assert waited == 5 and clock.pauses == [2, 2, 1]
    assert not_ready == {
        "Deployment kube-system/cilium-operator": "availableReplicas=1, generation=2, observedGeneration=2, replicas=2",
        "CustomResourceDefinition gateways.gateway.networking.k8s.io":
            "NamesAccepted=True; Established=False (Installing: the initial names have been accepted)",
        "DaemonSet kube-system/cilium": "not found",
        "CiliumNetworkPolicy serving/default": "the API server does not serve cilium.io/v2 CiliumNetworkPolicy (yet)",
    }


def test_readiness_is_kubernetes_cores_own():
    """A Deployment whose status is of an older generation is not ready, as for k8s_info's wait."""
    check = wait.Checker(FakeClient({("Deployment", "kube-system", "cilium-operator"): deployment(available=1, generation=3, observed=2)}))
    assert check(OPERATOR) == (False, "availableReplicas=1, generation=3, observedGeneration=2, replicas=1")
    check.client.objects[("Deployment", "kube-system", "cilium-operator")] = deployment(available=1, generation=3, observed=3)
    assert check(OPERATOR) == (True, "ready")


def job(condition=None):
    conditions = [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]
    return {"kind": "Job", "metadata": {"name": "mlflow-users-0123456789", "namespace": "mlflow"},
            "status": {"conditions": conditions} if condition else {}}


JOB = pd.ready_checks({"ready": [{"kind": "Job", "namespace": "mlflow", "name": "mlflow-users-0123456789"}]})[0]


class LoggingClient(FakeClient):
    """FakeClient that also lists a Job's pods (by label) and serves their logs."""

    def __init__(self, objects, pods):
        super().__init__(objects, served=("Job", "Pod", "Deployment"))
        self.pods, self.log_requests = pods, []

    def resource(self, kind, api_version):
        found = super().resource(kind, api_version)
        if kind == "Pod":
            client = self

            class Log:
                def get(self, name, namespace, serialize, query_params):
                    client.log_requests.append((namespace, name, dict(query_params)))
                    text = f"{name}/{dict(query_params)['container']}: psycopg.OperationalError: password authentication failed\n"
                    return type("Response", (), {"data": text.encode()})()

            found.log = Log()
        return found

    def get(self, resource, name=None, namespace=None, label_selector=None):
        if resource.kind == "Pod":
            assert label_selector == "batch.kubernetes.io/job-name=mlflow-users-0123456789"
            return ResourceInstance(self, {"apiVersion": "v1", "kind": "PodList", "items": self.pods})
        return super().get(resource, name=name, namespace=namespace)


def test_a_failed_job_ends_the_wait_at_once_with_its_pods_logs():
    """A Job that has Failed never completes: the wait stops at the first check, not at the
    timeout, and says why, with the end of each container's log."""
    pod = {"metadata": {"name": "mlflow-users-0123456789-x7k2p"}, "spec": {"containers": [{"name": "users"}]}}
    client = LoggingClient({("Job", "mlflow", "mlflow-users-0123456789"): job("Failed")}, [pod])
    clock = Clock()
    with pytest.raises(wait.ObjectFailed) as failed:
        wait.wait_all(wait.Checker(client), [OPERATOR, JOB], 600, 1, clock, clock.pause)
    assert clock.pauses == []
    message = str(failed.value)
    assert message.startswith("Job mlflow/mlflow-users-0123456789 failed (Failed=True (BackoffLimitExceeded: Job has reached"), message
    assert "log of pod mlflow-users-0123456789-x7k2p, container users (last 20 lines):" in message
    assert "password authentication failed" in message
    assert client.log_requests == [("mlflow", "mlflow-users-0123456789-x7k2p", {"container": "users", "tailLines": 20})]


def test_a_failed_job_without_pods_says_so_and_a_running_one_is_waited_for():
    client = LoggingClient({("Job", "mlflow", "mlflow-users-0123456789"): job()}, [])
    check = wait.Checker(client)
    assert check(JOB) == (False, "no status")
    client.objects[("Job", "mlflow", "mlflow-users-0123456789")] = job("Failed")
    with pytest.raises(wait.ObjectFailed, match="no pod of it is left to read a log from"):
        check(JOB)
    client.objects[("Job", "mlflow", "mlflow-users-0123456789")] = job("Complete")
    assert check(JOB) == (True, "ready")


def test_the_gpu_operators_cluster_policy_is_ready_by_its_state():
    policy = pd.ready_checks({"ready": [{"kind": "ClusterPolicy", "name": "cluster-policy"}]})[0]
    assert policy["api_version"] == "nvidia.com/v1" and policy["field"] == {"path": "status.state", "value": "ready"}
    objects = {("ClusterPolicy", None, "cluster-policy"): {"kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"},
                                                           "status": {"state": "notReady"}}}
    check = wait.Checker(FakeClient(objects, served=("ClusterPolicy",)))
    assert check(policy) == (False, "status.state='notReady', state=notReady")
    objects[("ClusterPolicy", None, "cluster-policy")]["status"] = {"state": "ready"}
    assert check(policy) == (True, "ready")


# -- the prune (module_utils/k8s_prune): what a layer no longer declares ------------------------

from ansible_collections.mlplatform.baremetal.plugins.module_utils import k8s_prune as prune  # noqa: E402


def _applied(kind, name, namespace="team-a", manager="ml-platform", operation="Apply", api_version="v1", owner=False):
    meta = {"name": name, "namespace": namespace, "labels": {"platform.ml/layer": "tenancy"},
            "managedFields": [{"manager": manager, "operation": operation}]}
    if owner:
        meta["ownerReferences"] = [{"kind": "Cluster", "name": "c", "uid": "u", "controller": True}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def test_only_what_the_platform_applied_and_no_controller_owns_is_a_prune_candidate():
    declared = {prune.identity("v1", "ConfigMap", "team-a", "kept")}
    listed = [
        _applied("ConfigMap", "kept"),
        _applied("ConfigMap", "gone"),
        _applied("ConfigMap", "by-hand", manager="kubectl"),
        _applied("ConfigMap", "updated", operation="Update"),
        _applied("ConfigMap", "owned", owner=True),
    ]
    assert [o["metadata"]["name"] for o in prune.candidates(listed, declared, "ml-platform")] == ["gone"]


def test_the_same_object_at_another_version_is_still_declared():
    declared = {prune.identity("policy/v1", "PodDisruptionBudget", "mlflow", "mlflow")}
    listed = [_applied("PodDisruptionBudget", "mlflow", namespace="mlflow", api_version="policy/v1beta1")]
    assert prune.candidates(listed, declared, "ml-platform") == []


class _Cluster:
    """What prune() reads and changes, in memory: listed objects by (apiVersion, kind), a record."""

    def __init__(self, objects, recorded=()):
        self.objects, self.recorded, self.deleted, self.record = objects, list(recorded), [], None

    def recorded_kinds(self, layer):
        return self.recorded

    def namespaced(self, api_version, kind):
        return True

    def listed(self, api_version, kind, layer):
        return [o for o in self.objects if (o["apiVersion"], o["kind"]) == (api_version, kind)]

    def delete(self, obj):
        self.deleted.append(obj["metadata"]["name"])

    def write_record(self, layer, kinds, field_manager):
        self.record = sorted(kinds)
        return True


def test_kinds_a_layer_may_hold_without_declaring_them_are_searched_and_not_recorded():
    """A model's retraining applies a canary (an HTTPRoute) under the platform's field manager
    with the model layer's label; the layer, promoted again with one version, declares no
    HTTPRoute and never did, so only its may_hold kinds find the route."""
    route = _applied("HTTPRoute", "iris", namespace="ml-serving", api_version="gateway.networking.k8s.io/v1")
    declared = [{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "namespace": "ml-serving", "name": "iris"}]
    cluster = _Cluster([route])
    assert prune.prune(cluster, "model-iris", declared, "ml-platform")[0] == []
    cluster = _Cluster([route])
    deleted, _, _ = prune.prune(cluster, "model-iris", declared, "ml-platform",
                                undeclared_kinds=[{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute"}])
    assert deleted == ["HTTPRoute ml-serving/iris"] and cluster.deleted == ["iris"]
    assert cluster.record == [("serving.kserve.io/v1beta1", "InferenceService")]


def test_data_kinds_are_kept_unless_asked():
    objects = [_applied("Namespace", "team-a", namespace=None), _applied("RoleBinding", "edit", api_version="rbac.authorization.k8s.io/v1"),
               _applied("Cluster", "db", api_version="postgresql.cnpg.io/v1")]
    kinds = ["Namespace", "postgresql.cnpg.io/Cluster"]
    delete, keep = prune.split_data(objects, kinds, False)
    assert [o["kind"] for o in delete] == ["RoleBinding"] and [o["kind"] for o in keep] == ["Namespace", "Cluster"]
    assert prune.split_data(objects, kinds, True) == (objects, [])


def test_the_declared_objects_are_names_only():
    layer = {"name": "tenancy", "namespaces": [{"name": "team-a", "pod_security": "baseline"}],
             "secrets": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team-a"}, "stringData": {"k": "secret"}}],
             "manifests": [{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "team-a"}}]}
    assert pd.declared_objects(layer) == [
        {"apiVersion": "v1", "kind": "Namespace", "namespace": "", "name": "team-a"},
        {"apiVersion": "v1", "kind": "Secret", "namespace": "team-a", "name": "s"},
        {"apiVersion": "v1", "kind": "ResourceQuota", "namespace": "team-a", "name": "q"},
    ]
    assert "secret" not in json.dumps(pd.declared_objects(layer))


# -- platform_k8s_apply: what of a Secret it must never show ---------------------------------------

import platform_k8s_apply as apply  # noqa: E402


def test_every_form_of_a_secrets_values_is_masked_and_other_kinds_are_not():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "data": {"key": "c2VjcmV0LWE=", "binary": "/w=="}, "stringData": {"password": "secret-b"}}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "shown"}}
    assert apply.secret_values([secret, other]) == {"c2VjcmV0LWE=", "secret-a", "/w==", "secret-b", "c2VjcmV0LWI="}
    assert apply.without_secret_data([secret, other]) == [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": ["binary", "key"], "stringData": ["password"]},
        other,
    ]


def test_a_list_kind_is_applied_as_its_items():
    listed = {"apiVersion": "v1", "kind": "ConfigMapList", "items": [{"metadata": {"name": "a"}}, {"kind": "ConfigMap", "metadata": {"name": "b"}}]}
    assert [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in apply.flatten([listed])] == [("v1", "ConfigMap", "a"), ("v1", "ConfigMap", "b")]
