"""Direct mode's readiness wait (platform_k8s_apply's `ready`, plugins/module_utils/k8s_wait.py,
which platform_k8s_apply's ready runs, with the objects platform_ready_checks makes of a layer's
`ready` list), run as deliver_direct.yml runs it,
against the real API server:

- a Job that has Failed ends the wait at once (not at the timeout), naming the Job, its
  condition and what its pods' logs show (here: that no kubelet serves them);
- the GPU Operator's ClusterPolicy, under its CRD from the pinned chart, is ready when its
  status.state is `ready`, and a wait on one that stays `notReady` names the state it saw.

The status writer marks the Job Failed, as the Job controller would after its backoff limit.
"""

from __future__ import annotations

import time

import pytest
import yaml

from apiserver import api_get, apply_server_side, request
from conftest import ROOT, run, tool
from k8s_schemas import chart_crds
from status_writer import StatusWriter

pytestmark = pytest.mark.xdist_group("apiserver")

NAMESPACE = "wait-test"
JOB = "setup-fails"


def _wait(apiserver, tmp_path, ready, timeout):
    """One run of the task deliver_direct.yml runs for a layer's readiness signals."""
    playbook = tmp_path / "wait.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Wait as direct delivery does",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        # As the inventories set it for the controller: the Python running Ansible.
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{
            "name": "Wait for every readiness signal of the layer",
            # deliver_direct.yml's last apply, with nothing to apply or prune: its wait.
            "mlplatform.baremetal.platform_k8s_apply": {
                "kubeconfig": str(apiserver.kubeconfig),
                "field_manager": "ml-platform",
                "ready": "{{ layer | mlplatform.baremetal.platform_ready_checks }}",
                "timeout": timeout,
                "sleep": 1,
            },
            "vars": {"layer": {"name": "test", "ready": ready}},
        }],
    }]))
    began = time.monotonic()
    result = run([tool("ansible-playbook"), "-i", "localhost,", str(playbook)], cwd=ROOT, timeout=300)
    return result, time.monotonic() - began


def _job():
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": JOB, "namespace": NAMESPACE},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "setup", "image": "registry.invalid/setup:1", "command": ["false"]}],
        }}},
    }


def _pod():
    """The pod the Job controller would have made (no controller runs here), by the label the
    wait reads pods by."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{JOB}-x7k2p", "namespace": NAMESPACE, "labels": {"batch.kubernetes.io/job-name": JOB}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "setup", "image": "registry.invalid/setup:1"}]},
    }


def test_a_failed_job_stops_the_wait_at_once_and_says_why(apiserver, tmp_path):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": NAMESPACE}}
    apply_server_side(apiserver, [namespace, account], "test")
    with StatusWriter(apiserver, fail_jobs={(NAMESPACE, JOB)}) as writer:
        apply_server_side(apiserver, [_job(), _pod()], "test")
        result, took = _wait(apiserver, tmp_path, [{"kind": "Job", "namespace": NAMESPACE, "name": JOB}], timeout=240)
    assert not writer.errors, writer.errors
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"Job {NAMESPACE}/{JOB} failed (" in output and "Failed=True (BackoffLimitExceeded" in output, output[-3000:]
    # No kubelet here: the API server has no log for a pod no node runs.
    assert f"log of pod {JOB}-x7k2p, container setup (last 20 lines):\n        (empty)" in output, output[-3000:]
    # Stopped by the Failed condition, long before the 240 s deadline.
    assert took < 60, f"the wait took {took:.0f}s: it waited for the timeout"


def test_the_cluster_policy_is_waited_for_by_its_state(apiserver, tmp_path):
    crd = next(doc for chart, doc in chart_crds() if chart == "gpu-operator" and doc["metadata"]["name"] == "clusterpolicies.nvidia.com")
    apply_server_side(apiserver, [crd], "test")
    for _ in range(120):
        conditions = (api_get(apiserver, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterpolicies.nvidia.com").get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            break
        time.sleep(0.5)
    required = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"]
    policy = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"},
              "spec": {key: {} for key in required}}
    apply_server_side(apiserver, [policy], "test")
    path = "/apis/nvidia.com/v1/clusterpolicies/cluster-policy/status"
    ready = [{"kind": "ClusterPolicy", "name": "cluster-policy"}]

    request(apiserver, "PATCH", path, {"status": {"state": "notReady"}}, "application/merge-patch+json")
    result, _ = _wait(apiserver, tmp_path, ready, timeout=3)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "ClusterPolicy cluster-policy (status.state='notReady'" in output, output[-3000:]

    request(apiserver, "PATCH", path, {"status": {"state": "ready"}}, "application/merge-patch+json")
    result, _ = _wait(apiserver, tmp_path, ready, timeout=30)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
