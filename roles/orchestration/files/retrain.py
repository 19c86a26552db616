"""The steps of a served model's retraining (WorkflowTemplate retrain-<model>, and the
drift job's step that starts one), one subcommand each:

- guard: may a retraining start now? Not while a rollout of the model is in progress
  (raw: the InferenceService <model>-canary exists; serverless: the InferenceService
  <model> has a canaryTrafficPercent), nor sooner than MIN_INTERVAL_SECONDS after the
  last one started (the registered model's tag retrain_started_at, epoch seconds). A
  refusal is said in the step's output and as the registered model's tags
  retrain_skipped_reason and retrain_skipped_at; otherwise it sets retrain_started_at
  and retrain_workflow, and the retraining proceeds.
- decide: reads the training step's result (RESULT: {"metric", "score", "serving_score",
  "model_version", "serving_uri"}) and judges the new version: a canary when its score is
  at least MIN_IMPROVEMENT above the serving version's on the same held-out rows (a tie
  never is), otherwise rejected; records the decision on the new version in MLflow
  (tags retrain_decision, retrain_reason, retrain_trigger, retrain_workflow).
- canary: puts the new version in place as promote.yml -e promote_strategy=canary would:
  the documents rendered at promote time (DOCUMENTS_FILE, JSON, with the placeholders
  for the version and its storage URI) applied server-side under FIELD_MANAGER, then
  the rollout-analysis Workflow (ANALYSIS_FILE) created.
- submit: starts a retraining, a Workflow retrain-<model>-<random> from the
  WorkflowTemplate retrain-<model> with the parameter trigger (TRIGGER).

Outputs go to files in OUTPUT_DIR (one per output parameter). Only the Python standard
library: MLflow and Kubernetes over their REST APIs (platform_api.py, shipped beside it).
"""

from __future__ import annotations

import json
import os
import sys
import time

from platform_api import Kubernetes, MLflow, resource_path

VERSION_PLACEHOLDER = "__RETRAIN_VERSION__"
STORAGE_URI_PLACEHOLDER = "__RETRAIN_STORAGE_URI__"


def rollout_in_progress(kube, namespace, model, mode):
    """Why a rollout of model is in progress, or None."""
    if mode == "serverless":
        isvc = kube.get(resource_path("serving.kserve.io/v1beta1", "InferenceService", namespace, model), missing_ok=True)
        percent = ((isvc or {}).get("spec") or {}).get("predictor", {}).get("canaryTrafficPercent")
        if percent is not None:
            return (f"a rollout of {model} is in progress (the InferenceService {model} sends {percent}% of its requests to "
                    f"version {isvc['metadata'].get('annotations', {}).get('platform.ml/model-version', '?')})")
        return None
    canary = kube.get(resource_path("serving.kserve.io/v1beta1", "InferenceService", namespace, f"{model}-canary"), missing_ok=True)
    if canary is not None:
        return (f"a rollout of {model} is in progress (the InferenceService {model}-canary serves version "
                f"{canary['metadata'].get('annotations', {}).get('platform.ml/model-version', '?')})")
    return None


def guard_verdict(now, rollout, started_at, min_interval):
    """(proceed, reason): rollout is why a rollout is in progress (or None); started_at the
    tag retrain_started_at (epoch seconds, or None); min_interval in seconds."""
    if rollout:
        return False, f"{rollout}; finish it first (promote.yml with the default strategy, or -e promote_strategy=rollback)"
    if started_at not in (None, ""):
        try:
            elapsed = now - int(float(started_at))
        except ValueError:
            elapsed = min_interval
        if elapsed < min_interval:
            return False, (f"the last retraining started {elapsed} s ago, less than the minimum interval of {min_interval} s "
                           f"(orchestration_retrain_min_interval); the next may start in {min_interval - elapsed} s")
    return True, "no rollout is in progress and the minimum interval has passed"


def decide_verdict(result, min_improvement):
    """(decision, reason) on the training step's result: "canary" when the new version's
    score is at least min_improvement above the serving version's (and above it at all,
    so a tie never starts a canary), else "rejected"."""
    metric, score, serving = result.get("metric", "score"), result.get("score"), result.get("serving_score")
    if score is None:
        return "rejected", f"the training step gave no {metric} for the new version"
    if serving is None:
        return "rejected", (f"the serving version's {metric} is unknown (the training step was given no serving-uri or could not score it), "
                            f"so version {result.get('model_version', '?')} ({metric} {float(score):.4f}) cannot be shown to be better")
    score, serving, minimum = float(score), float(serving), float(min_improvement)
    gain = round(score - serving, 9)
    words = f"{metric} {score:.4f} against the serving version's {serving:.4f} on the same held-out rows, a gain of {gain:+.4f}"
    if gain > 0 and gain >= minimum:
        return "canary", f"{words}, at least the required {minimum:.4f}"
    if gain < minimum:
        return "rejected", f"{words}, less than the required {minimum:.4f}"
    return "rejected", f"{words}: no better than the serving version"


def write_outputs(outputs):
    directory = os.environ.get("OUTPUT_DIR", "/tmp/outputs")
    os.makedirs(directory, exist_ok=True)
    for name, value in outputs.items():
        with open(os.path.join(directory, name), "w") as handle:
            handle.write(str(value))


def guard(env):
    model, workflow = env["MODEL"], env.get("WORKFLOW_NAME", "")
    mlflow = MLflow()
    rollout = rollout_in_progress(Kubernetes(), env["NAMESPACE"], model, env.get("MODE", "raw"))
    now = int(time.time())
    proceed, reason = guard_verdict(now, rollout, mlflow.model_tags(model).get("retrain_started_at"), int(env["MIN_INTERVAL_SECONDS"]))
    if proceed:
        mlflow.tag_model(model, {"retrain_started_at": now, "retrain_workflow": workflow, "retrain_trigger": env.get("TRIGGER", "manual")})
    else:
        mlflow.tag_model(model, {"retrain_skipped_reason": reason, "retrain_skipped_at": now})
    print(f"{model}: {'retraining' if proceed else 'no retraining'}: {reason}", flush=True)
    write_outputs({"proceed": str(proceed).lower(), "reason": reason})
    return 0


def decide(env):
    model = env["MODEL"]
    result = json.loads(env["RESULT"])
    decision, reason = decide_verdict(result, env["MIN_IMPROVEMENT"])
    version, storage_uri = str(result["model_version"]), result.get("serving_uri", "")
    if decision == "canary":
        if env.get("DELIVERY", "direct") == "gitops":
            reason += (f"; start its canary with ansible-playbook playbooks/promote.yml -e promote_model={model} -e promote_version={version} "
                       f"-e promote_storage_uri={storage_uri} -e promote_strategy=canary (gitops: the tree holds the weights)")
        elif env.get("APPROVAL") == "true":
            reason += f"; its canary waits for approval: argo resume {env.get('WORKFLOW_NAME', '')} (argo stop refuses it)"
    MLflow().tag_version(model, version, {"retrain_decision": decision, "retrain_reason": reason, "retrain_trigger": env.get("TRIGGER", "manual"),
                                          "retrain_workflow": env.get("WORKFLOW_NAME", "")})
    print(f"{model} version {version}: {decision}: {reason}", flush=True)
    write_outputs({"decision": decision, "version": version, "storage-uri": storage_uri, "reason": reason})
    return 0


def filled(text, version, storage_uri):
    """The promote-time rendering with the new version and its storage URI in place."""
    return json.loads(text.replace(VERSION_PLACEHOLDER, version).replace(STORAGE_URI_PLACEHOLDER, storage_uri))


def canary(env):
    model, version, storage_uri = env["MODEL"], env["VERSION"], env["STORAGE_URI"]
    if not version.isdigit() or not storage_uri.startswith("s3://"):
        print(f"refusing to start a canary of version {version!r} at {storage_uri!r}", file=sys.stderr)
        return 2
    kube = Kubernetes()
    with open(env["DOCUMENTS_FILE"]) as handle:
        documents = filled(handle.read(), version, storage_uri)
    for document in documents:
        kube.apply(document, env["FIELD_MANAGER"])
        print(f"applied {document['kind']} {document['metadata']['namespace']}/{document['metadata']['name']}", flush=True)
    with open(env["ANALYSIS_FILE"]) as handle:
        analysis = filled(handle.read(), version, storage_uri)
    kube.create(analysis, exists_ok=True)
    print(f"{model} version {version} is a canary; the workflow {analysis['metadata']['name']} judges it", flush=True)
    write_outputs({"analysis": analysis["metadata"]["name"]})
    return 0


def submit(env):
    model = env["MODEL"]
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "metadata": {"generateName": f"retrain-{model}-", "namespace": env["NAMESPACE"],
                             "labels": {"platform.ml/model": model, "platform.ml/retrain-trigger": env.get("TRIGGER", "drift")}},
                "spec": {"workflowTemplateRef": {"name": f"retrain-{model}"},
                         "arguments": {"parameters": [{"name": "trigger", "value": env.get("TRIGGER", "drift")}]}}}
    created = Kubernetes().create(workflow)
    print(f"{model}: started the retraining {created['metadata']['name']}", flush=True)
    write_outputs({"workflow": created["metadata"]["name"]})
    return 0


def main(argv):
    commands = {"guard": guard, "decide": decide, "canary": canary, "submit": submit}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"usage: retrain.py {'|'.join(commands)}", file=sys.stderr)
        return 2
    return commands[argv[1]](os.environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
