"""The platform's alerts (PrometheusRule ml-platform, rendered for the production
inventory): every expression parses with promtool, the alerts fire on the
series they are meant for (promtool test rules), and each carries a runbook
that docs/runbooks.md answers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, session_render

PROMTOOL = shutil.which("promtool") or "/usr/local/bin/promtool"


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    # production's tree from the README's gitops render, shared by the session (conftest.py).
    _, _, tree_docs = session_render("production", tmp_path_factory)
    docs = [d for docs in tree_docs.values() for d in docs if d["kind"] == "PrometheusRule"]
    # The platform's rules (observability), the GPU layer's and the backup layer's own: all there are.
    assert sorted(d["metadata"]["name"] for d in docs) == ["backup", "gpu", "ml-platform"]
    groups = [group for doc in docs for group in doc["spec"]["groups"]]
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path, groups


@pytest.fixture(scope="module")
def promtool():
    if not os.path.exists(PROMTOOL):
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/setup-test-host.sh extracts it (make test runs it)")
        pytest.skip("promtool is missing (run scripts/setup-test-host.sh as root)")
    return PROMTOOL


def alerts(groups):
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_rule_parses(rules, promtool):
    path, _ = rules
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 15 rules found" in result.stdout


def test_the_seed_alerts_are_all_there(rules):
    _, groups = rules
    assert {a["alert"] for a in alerts(groups)} == {
        "InferenceLatencyP99High", "InferenceErrorRateAfterRollout", "GPUMemoryHigh", "GPUsIdleWhileJobsPending",
        "ObjectStorageVolumeAbove80Percent", "DatabaseBackupFailed", "DatabaseReplicationLagging",
        "GPUXidError", "GPUTemperatureHigh", "VeleroBackupFailed", "VeleroBackupTooOld", "VeleroNeverBackedUp",
        "PlatformCertificateExpiresSoon", "ModelDataDrift", "ModelPredictionDrift",
    }


def test_each_alert_has_a_runbook_the_docs_answer(rules):
    _, groups = rules
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    headings = {re.sub(r"[^a-z0-9]+", "", line.lower()) for line in runbooks.splitlines() if line.startswith("## ")}
    for alert in alerts(groups):
        annotations = alert["annotations"]
        assert len(annotations["runbook"]) > 40, alert["alert"]
        anchor = annotations["runbook_url"].rsplit("#", 1)[1]
        assert anchor == alert["alert"].lower() and anchor in headings, alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical")


UNIT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1h
    input_series:
      - series: 'velero_backup_last_status{schedule="velero-daily"}'
        values: '1 1 0 0'
    alert_rule_test:
      - eval_time: 1h
        alertname: VeleroBackupFailed
        exp_alerts: []
      - eval_time: 2h
        alertname: VeleroBackupFailed
        exp_alerts:
          - exp_labels: {severity: critical, schedule: velero-daily}
  - interval: 1m
    input_series:
      # The last success at time 0, then none.
      - series: 'velero_backup_last_successful_timestamp{schedule="velero-daily"}'
        values: '0x2500'
    alert_rule_test:
      - eval_time: 30h
        alertname: VeleroBackupTooOld
        exp_alerts: []
      - eval_time: 40h
        alertname: VeleroBackupTooOld
        exp_alerts:
          - exp_labels: {severity: critical, schedule: velero-daily}
      - eval_time: 40h
        alertname: VeleroNeverBackedUp
        exp_alerts: []
  - interval: 1h
    input_series:
      - series: 'up{job="velero"}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 20h
        alertname: VeleroNeverBackedUp
        exp_alerts: []
      - eval_time: 28h
        alertname: VeleroNeverBackedUp
        exp_alerts:
          - exp_labels: {severity: warning, schedule: velero-daily}
  - interval: 1m
    input_series:
      - series: 'DCGM_FI_DEV_FB_USED{gpu="0", Hostname="gpu-h100-01"}'
        values: '76000x20'
      - series: 'DCGM_FI_DEV_FB_FREE{gpu="0", Hostname="gpu-h100-01"}'
        values: '4000x20'
      - series: 'DCGM_FI_DEV_FB_USED{gpu="1", Hostname="gpu-h100-01"}'
        values: '40000x20'
      - series: 'DCGM_FI_DEV_FB_FREE{gpu="1", Hostname="gpu-h100-01"}'
        values: '40000x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: GPUMemoryHigh
        exp_alerts:
          - exp_labels: {severity: warning, gpu: "0", Hostname: gpu-h100-01}
  - interval: 1m
    input_series:
      - series: 'kubelet_volume_stats_used_bytes{namespace="minio", persistentvolumeclaim="data-platform-pool-0-0"}'
        values: '85x30'
      - series: 'kubelet_volume_stats_capacity_bytes{namespace="minio", persistentvolumeclaim="data-platform-pool-0-0"}'
        values: '100x30'
      - series: 'kubelet_volume_stats_used_bytes{namespace="minio", persistentvolumeclaim="data-platform-pool-0-1"}'
        values: '50x30'
      - series: 'kubelet_volume_stats_capacity_bytes{namespace="minio", persistentvolumeclaim="data-platform-pool-0-1"}'
        values: '100x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: ObjectStorageVolumeAbove80Percent
        exp_alerts:
          - exp_labels: {severity: warning, namespace: minio, persistentvolumeclaim: data-platform-pool-0-0}
  - interval: 1m
    input_series:
      - series: 'DCGM_FI_DEV_GPU_UTIL{gpu="0", Hostname="gpu-a100-01"}'
        values: '0x30'
      - series: 'kube_pod_container_resource_requests{namespace="ml-training", pod="train-1", resource="nvidia_com_gpu"}'
        values: '1x30'
      - series: 'kube_pod_status_phase{namespace="ml-training", pod="train-1", phase="Pending"}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: GPUsIdleWhileJobsPending
        exp_alerts:
          - exp_labels: {severity: warning}
  - interval: 1m
    input_series:
      - series: 'DCGM_FI_DEV_XID_ERRORS{gpu="3", Hostname="gpu-h100-02"}'
        values: '0x5 79 0x10'
      - series: 'DCGM_FI_DEV_XID_ERRORS{gpu="2", Hostname="gpu-h100-02"}'
        values: '0x20'
      - series: 'DCGM_FI_DEV_GPU_TEMP{gpu="1", hostname="gpu-a100-01"}'
        values: '90x20'
      - series: 'DCGM_FI_DEV_GPU_TEMP{gpu="0", hostname="gpu-a100-01"}'
        values: '70x20'
    alert_rule_test:
      - eval_time: 7m
        alertname: GPUXidError
        exp_alerts:
          - exp_labels: {severity: critical, gpu: "3", Hostname: gpu-h100-02}
            value: "79"
      - eval_time: 15m
        alertname: GPUXidError
        exp_alerts: []
      - eval_time: 15m
        alertname: GPUTemperatureHigh
        exp_alerts:
          - exp_labels: {severity: warning, gpu: "1", hostname: gpu-a100-01}
            value: "90"
  - interval: 1m
    input_series:
      - series: 'cnpg_collector_last_failed_backup_timestamp{namespace="ml-tracking", pod="mlflow-db-1"}'
        values: '2000x10'
      - series: 'cnpg_collector_last_available_backup_timestamp{namespace="ml-tracking", pod="mlflow-db-1"}'
        values: '1000x10'
    alert_rule_test:
      - eval_time: 8m
        alertname: DatabaseBackupFailed
        exp_alerts:
          - exp_labels: {severity: critical, namespace: ml-tracking, pod: mlflow-db-1}
  - interval: 1m
    input_series:
      # Two replicas of the inference-logger serve the drift job's reports: iris's inputs
      # drifted at minute 10 (one replica reads the report a minute later), its predictions
      # did not; fraud never drifted. A new version (4) without drift then replaces 3.
      - series: 'model_data_drift{model="iris", version="3", pod="inference-logger-a"}'
        values: '0x9 1x20 _x10'
      - series: 'model_data_drift{model="iris", version="3", pod="inference-logger-b"}'
        values: '0x10 1x19 _x10'
      - series: 'model_data_drift{model="iris", version="4", pod="inference-logger-a"}'
        values: '_x30 0x10'
      - series: 'model_prediction_drift{model="iris", version="3", pod="inference-logger-a"}'
        values: '0x30'
      - series: 'model_data_drift{model="fraud", version="7", pod="inference-logger-a"}'
        values: '0x40'
      - series: 'model_prediction_drift{model="fraud", version="7", pod="inference-logger-a"}'
        values: '0x15 1x25'
    alert_rule_test:
      - eval_time: 12m
        alertname: ModelDataDrift
        exp_alerts: []
      - eval_time: 20m
        alertname: ModelDataDrift
        exp_alerts:
          - exp_labels: {severity: warning, model: iris, version: "3"}
      - eval_time: 38m
        alertname: ModelDataDrift
        exp_alerts: []
      - eval_time: 25m
        alertname: ModelPredictionDrift
        exp_alerts:
          - exp_labels: {severity: warning, model: fraud, version: "7"}
  - interval: 1m
    input_series:
      # A certificate that expires 14 days and 2 hours after time 0, and never renews.
      - series: 'certmanager_certificate_expiration_timestamp_seconds{namespace="platform-gateway",name="platform-gateway"}'
        values: '1216800x300'
    alert_rule_test:
      - eval_time: 150m
        alertname: PlatformCertificateExpiresSoon
        exp_alerts: []
      - eval_time: 4h
        alertname: PlatformCertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, namespace: platform-gateway, name: platform-gateway}
"""


def with_annotations(unit_tests, groups):
    """promtool compares annotations too: expect each alert's own, with its labels filled in."""
    by_name = {a["alert"]: a for a in alerts(groups)}
    doc = yaml.safe_load(unit_tests)
    for test in doc["tests"]:
        for check in test["alert_rule_test"]:
            for expected in check["exp_alerts"]:
                labels = expected["exp_labels"]
                # "value" (ours, not promtool's): what {{ $value }} renders to.
                measured = expected.pop("value", "")
                expected["exp_annotations"] = {
                    key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: str(labels.get(m.group(1), "")), value).replace("{{ $value }}", measured)
                    for key, value in by_name[check["alertname"]]["annotations"].items()
                }
    return yaml.safe_dump(doc)


def test_the_alerts_fire_on_the_series_they_watch(rules, promtool):
    path, groups = rules
    tests = path.parent / "tests.yaml"
    tests.write_text(with_annotations(UNIT_TESTS, groups))
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, check=False, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
