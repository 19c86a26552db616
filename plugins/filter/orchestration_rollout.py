"""What a model rollout checks and plans (playbooks/promote.yml, layer 7's analysis).

- ``orchestration_rollout_problems``: the rollout settings of the inventory (canary
  share, steps, analysis window and thresholds) an operator can get wrong, each named
  with its fix (preflight, and promote.yml itself);
- ``orchestration_drift_problems``: the drift monitoring settings (the drift jobs'
  schedule, window and thresholds), each named with its fix;
- ``orchestration_retrain_problems``: the automated retraining settings (the defaults
  and the per-model overrides in orchestration_retrain_models), each named with its fix;
- ``orchestration_retrain_settings``: what applies to one model's retraining, the
  defaults under its overrides;
- ``orchestration_promote_plan``: from what the operator asks (a strategy and a
  version) and what serves the model now (the InferenceServices of its layer, read
  from the cluster or the GitOps tree), the versions to serve and the candidate's
  share of the traffic, or the problems that stop the promotion.

In raw-deployment mode a model under rollout is two InferenceServices, ``<model>``
(the stable version, whose predictor Service the inference-gateway proxies to) and
``<model>-canary`` (the candidate), and one HTTPRoute bound to that Service (Gateway
API for service meshes, GAMMA, which Cilium implements) that splits its traffic by
weight. In serverless mode it is one InferenceService whose spec is the candidate,
with KServe's canaryTrafficPercent, and the stable version in its annotations.
"""

from __future__ import annotations

import re

STRATEGIES = ("replace", "canary", "ab", "rollback")
DURATION = re.compile(r"^[1-9][0-9]*[smh]$")
CANARY_SUFFIX = "-canary"
# An InferenceService name of at most 45 characters (what promote.yml allows), less the suffix.
ROLLOUT_MODEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,36}[a-z0-9])?$")
VERSION = "platform.ml/model-version"
STABLE_VERSION = "platform.ml/stable-version"
STABLE_URI = "platform.ml/stable-storage-uri"


def _int(value):
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if str(number) == str(value).strip() else None


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _percent_problem(variable, value):
    number = _int(value)
    if number is None or not 1 <= number <= 99:
        return f"{variable}: {value!r} must be a whole percentage from 1 to 99 (the new version's share of requests). Fix: use, for example, 10."
    return None


def rollout_problems(settings):
    """settings: the orchestration role's rollout variables (defaults under the inventory's values)."""
    found = []
    percent = settings.get("orchestration_rollout_canary_percent")
    problem = _percent_problem("orchestration_rollout_canary_percent", percent)
    if problem:
        found.append(problem)
    steps = settings.get("orchestration_rollout_steps")
    if not isinstance(steps, (list, tuple)):
        found.append(f"orchestration_rollout_steps: {steps!r} must be a list of percentages, such as [25, 50]. Fix: write it as a YAML list (with -e, as JSON).")
    else:
        numbers = [_int(step) for step in steps]
        if any(n is None or not 1 <= n <= 99 for n in numbers):
            found.append(f"orchestration_rollout_steps: {list(steps)!r} must hold whole percentages from 1 to 99 (100 is the promotion itself). Fix: use, for example, [25, 50].")
        elif numbers != sorted(set(numbers)):
            found.append(f"orchestration_rollout_steps: {list(steps)!r} must rise step by step, each share once. Fix: sort them, such as [25, 50].")
        elif not problem and numbers and numbers[0] <= int(percent):
            found.append(f"orchestration_rollout_steps: the first step {numbers[0]} must be above orchestration_rollout_canary_percent ({percent}), where a canary starts. Fix: raise the steps or lower the starting share.")
    window = settings.get("orchestration_rollout_window")
    if not DURATION.match(str(window)):
        found.append(f"orchestration_rollout_window: {window!r} is not a Prometheus duration of seconds, minutes or hours. Fix: use, for example, 10m.")
    rate = _number(settings.get("orchestration_rollout_max_error_rate"))
    if rate is None or not 0 <= rate < 1:
        found.append(f"orchestration_rollout_max_error_rate: {settings.get('orchestration_rollout_max_error_rate')!r} must be a fraction of requests from 0 to below 1. Fix: use, for example, 0.01 (1%).")
    latency = _number(settings.get("orchestration_rollout_max_latency_p95_seconds"))
    if latency is None or latency <= 0:
        found.append(f"orchestration_rollout_max_latency_p95_seconds: {settings.get('orchestration_rollout_max_latency_p95_seconds')!r} must be a positive number of seconds. Fix: use, for example, 0.5.")
    minimum = _int(settings.get("orchestration_rollout_min_requests"))
    if minimum is None or minimum < 1:
        found.append(f"orchestration_rollout_min_requests: {settings.get('orchestration_rollout_min_requests')!r} must be a whole number of at least 1 (fewer requests in the window cannot judge the candidate). Fix: use, for example, 20.")
    return found


# Argo's CronWorkflow schedules (its CRD's pattern): five cron fields, or a macro.
CRON = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|([A-Za-z0-9*,/?-]+\s+){4}[A-Za-z0-9*,/?-]+)$")


def duration_seconds(value):
    """Seconds of a duration such as 30m or 24h (DURATION), or None."""
    text = str(value)
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]] if DURATION.match(text) else None


def drift_problems(settings):
    """settings: the orchestration role's drift variables (defaults under the inventory's values)."""
    found = []
    schedule = settings.get("orchestration_drift_schedule")
    if not isinstance(schedule, str) or not CRON.match(schedule.strip()):
        found.append(f"orchestration_drift_schedule: {schedule!r} is not a five-field cron schedule (minute hour day month weekday) "
                     "or a macro such as @hourly, what Argo's CronWorkflow takes. Fix: use, for example, 0 * * * * (every hour).")
    window = settings.get("orchestration_drift_window")
    if duration_seconds(window) is None:
        found.append(f"orchestration_drift_window: {window!r} is not a duration of seconds, minutes or hours. Fix: use, for example, 24h.")
    minimum = _int(settings.get("orchestration_drift_min_rows"))
    if minimum is None or minimum < 10:
        found.append(f"orchestration_drift_min_rows: {settings.get('orchestration_drift_min_rows')!r} must be a whole number of at least 10 "
                     "(fewer logged requests cannot be compared with the reference). Fix: use, for example, 100.")
    share = _number(settings.get("orchestration_drift_share"))
    if share is None or not 0 < share <= 1:
        found.append(f"orchestration_drift_share: {settings.get('orchestration_drift_share')!r} must be a fraction of the features above 0 and at most 1. "
                     "Fix: use, for example, 0.5 (half of them).")
    p_value = _number(settings.get("orchestration_drift_p_value"))
    if p_value is None or not 0 < p_value < 1:
        found.append(f"orchestration_drift_p_value: {settings.get('orchestration_drift_p_value')!r} must be a significance level between 0 and 1. "
                     "Fix: use, for example, 0.05.")
    limit = _number(settings.get("orchestration_drift_distance"))
    if limit is None or limit <= 0:
        found.append(f"orchestration_drift_distance: {settings.get('orchestration_drift_distance')!r} must be a positive distance. Fix: use, for example, 0.1.")
    return found


RETRAIN_KEYS = {"on_drift": "true or false", "schedule": "a cron schedule, or \"\" for none", "approval": "true or false",
                "template": "the name of the model's training WorkflowTemplate", "data_uri": "s3://<training-datasets>/<key>.csv, or \"\""}
TEMPLATE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _bool(value):
    """True or False of a YAML boolean, or of "true"/"false" as -e key=value gives it; None otherwise."""
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(value.lower()) if isinstance(value, str) else None


def _schedule_problem(variable, schedule):
    if schedule == "":
        return None
    if not isinstance(schedule, str) or not CRON.match(schedule.strip()):
        return (f"{variable}: {schedule!r} is not a five-field cron schedule or a macro such as @daily, what Argo's CronWorkflow takes, "
                "nor \"\" (no scheduled retraining). Fix: use, for example, 0 3 * * 0 (Sundays at 03:00).")
    return None


def _data_uri_problem(variable, uri, bucket):
    if uri == "" or (isinstance(uri, str) and re.match(rf"^s3://{re.escape(bucket)}/[^/].*\.csv$", uri)):
        return None
    return (f"{variable}: {uri!r} must be a CSV file in the {bucket} bucket (the training user reads only there), "
            f"or \"\" for the training template's own data. Fix: use, for example, s3://{bucket}/iris/current.csv.")


def retrain_problems(settings, bucket="training-datasets"):
    """settings: the orchestration role's retraining variables (defaults under the inventory's
    values); bucket: the training-datasets bucket (platform_buckets.training_datasets)."""
    found = []
    for name in ("orchestration_retrain_on_drift", "orchestration_retrain_approval"):
        if _bool(settings.get(name)) is None:
            found.append(f"{name}: {settings.get(name)!r} must be true or false. Fix: write it unquoted, such as {name}: true.")
    problem = _schedule_problem("orchestration_retrain_schedule", settings.get("orchestration_retrain_schedule"))
    if problem:
        found.append(problem)
    interval = settings.get("orchestration_retrain_min_interval")
    if duration_seconds(interval) is None:
        found.append(f"orchestration_retrain_min_interval: {interval!r} is not a duration of seconds, minutes or hours "
                     "(the least time between two retrainings of a model). Fix: use, for example, 24h.")
    improvement = _number(settings.get("orchestration_retrain_min_improvement"))
    if improvement is None or not 0 <= improvement < 1:
        found.append(f"orchestration_retrain_min_improvement: {settings.get('orchestration_retrain_min_improvement')!r} must be a fraction "
                     "from 0 to below 1 (how much better than the serving version's a new version's score must be). Fix: use, for example, 0.01.")
    models = settings.get("orchestration_retrain_models")
    if not isinstance(models, dict):
        found.append(f"orchestration_retrain_models: {models!r} must be a mapping of model name to its settings. "
                     "Fix: write it as a YAML mapping, such as {iris: {approval: true}}.")
        return found
    for model, overrides in models.items():
        variable = f"orchestration_retrain_models.{model}"
        if not isinstance(overrides, dict):
            found.append(f"{variable}: {overrides!r} must be a mapping of {', '.join(RETRAIN_KEYS)}. Fix: such as {{approval: true}}.")
            continue
        for key in overrides:
            if key not in RETRAIN_KEYS:
                found.append(f"{variable}: {key!r} is not a retraining setting. Fix: use only "
                             + "; ".join(f"{k} ({v})" for k, v in RETRAIN_KEYS.items()) + ".")
        for key in ("on_drift", "approval"):
            if key in overrides and _bool(overrides[key]) is None:
                found.append(f"{variable}.{key}: {overrides[key]!r} must be true or false. Fix: write it unquoted.")
        problem = _schedule_problem(f"{variable}.schedule", overrides.get("schedule", ""))
        if problem:
            found.append(problem)
        template = overrides.get("template", f"train-{model}")
        if not isinstance(template, str) or not TEMPLATE_NAME.match(template):
            found.append(f"{variable}.template: {template!r} must be the name of a WorkflowTemplate in the workflows' namespace "
                         "with a template fit (docs/lifecycle.md). Fix: use, for example, train-iris.")
        problem = _data_uri_problem(f"{variable}.data_uri", overrides.get("data_uri", ""), bucket)
        if problem:
            found.append(problem)
    return found


def retrain_settings(settings, model, bucket="training-datasets"):
    """What applies to the retraining of model: {enabled, on_drift, schedule, approval,
    template, data_uri, min_interval_seconds, min_improvement}; enabled when drift or a
    schedule starts it. The data defaults to s3://<bucket>/<model>/current.csv."""
    overrides = (settings.get("orchestration_retrain_models") or {}).get(model) or {}
    chosen = {"on_drift": bool(_bool(overrides.get("on_drift", settings.get("orchestration_retrain_on_drift", True)))),
              "schedule": overrides.get("schedule", settings.get("orchestration_retrain_schedule", "")),
              "approval": bool(_bool(overrides.get("approval", settings.get("orchestration_retrain_approval", False)))),
              "template": overrides.get("template", f"train-{model}"),
              "data_uri": overrides.get("data_uri", f"s3://{bucket}/{model}/current.csv"),
              "min_interval_seconds": duration_seconds(settings.get("orchestration_retrain_min_interval", "24h")),
              "min_improvement": float(settings.get("orchestration_retrain_min_improvement", 0.01))}
    chosen["enabled"] = bool(chosen["on_drift"] or chosen["schedule"])
    return chosen


def _served(isvc):
    """(version, storage uri, format) of an InferenceService document."""
    annotations = isvc.get("metadata", {}).get("annotations") or {}
    model = isvc.get("spec", {}).get("predictor", {}).get("model", {})
    return {"version": str(annotations.get(VERSION, "")), "storage_uri": model.get("storageUri", ""),
            "format": (model.get("modelFormat") or {}).get("name", "sklearn")}


def current_rollout(model, current, mode):
    """(stable, candidate or None, candidate's share) of what serves model now, from its
    layer's InferenceServices; stable is None when nothing serves it."""
    by_name = {d.get("metadata", {}).get("name"): d for d in current or [] if d and d.get("kind") == "InferenceService"}
    main = by_name.get(model)
    if main is None:
        return None, None, 0
    served = _served(main)
    annotations = main["metadata"].get("annotations") or {}
    if mode == "serverless":
        if STABLE_VERSION in annotations:
            stable = dict(served, version=str(annotations[STABLE_VERSION]), storage_uri=annotations.get(STABLE_URI, ""))
            return stable, served, int(main["spec"]["predictor"].get("canaryTrafficPercent") or 0)
        return served, None, 0
    canary = by_name.get(model + CANARY_SUFFIX)
    return served, (_served(canary) if canary else None), 0


def promote_plan(request, current=None, mode="raw"):
    """request: {model, strategy, version, storage_uri, format, canary_percent, ab_weight};
    current: the model layer's InferenceService documents now; mode: serving_deployment_mode.
    Returns {problems, strategy, stable, candidate, weight}: weight is the candidate's
    share in percent (0 without one)."""
    model = str(request.get("model") or "")
    strategy = request.get("strategy") or "replace"
    plan = {"problems": [], "strategy": strategy, "stable": None, "candidate": None, "weight": 0}
    problems = plan["problems"]
    if strategy not in STRATEGIES:
        problems.append(f"promote_strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}. Fix: use replace (the default), canary, ab or rollback.")
        return plan
    asked = {"version": str(request.get("version") or ""), "storage_uri": request.get("storage_uri") or "",
             "format": request.get("format") or "sklearn"}
    if strategy == "replace":
        plan["stable"] = asked
        return plan
    if not ROLLOUT_MODEL.match(model):
        problems.append(f"promote_model: {model!r} must be a DNS label of at most 38 characters for a {strategy} "
                        f"(the candidate's InferenceService is {model}{CANARY_SUFFIX}). Fix: promote a model with a shorter name.")
    stable, candidate, _ = current_rollout(model, current, mode)
    if stable is None:
        problems.append(f"promote_strategy={strategy}: nothing serves {model} yet, so there is no version to "
                        f"{'roll back to' if strategy == 'rollback' else 'split traffic with'}. "
                        "Fix: promote a first version with the default strategy, replace.")
        return plan
    plan["stable"] = stable
    if strategy == "rollback":
        if candidate is None:
            problems.append(f"promote_strategy=rollback: no rollout of {model} is running (version {stable['version']} alone serves it). "
                            "Fix: nothing to roll back; to serve another version, promote it.")
        return plan
    if asked["version"] == stable["version"]:
        problems.append(f"promote_version: {asked['version']} is the version serving {model} already. Fix: name the new version to split traffic with.")
    variable = "promote_canary_percent" if strategy == "canary" else "promote_ab_weight"
    weight = request.get("canary_percent") if strategy == "canary" else request.get("ab_weight")
    problem = _percent_problem(variable, weight)
    if problem:
        problems.append(problem)
        return plan
    plan["candidate"] = asked
    plan["weight"] = int(str(weight))
    return plan


class FilterModule:
    def filters(self):
        return {"orchestration_rollout_problems": rollout_problems, "orchestration_drift_problems": drift_problems,
                "orchestration_duration_seconds": duration_seconds, "orchestration_promote_plan": promote_plan,
                "orchestration_retrain_problems": retrain_problems, "orchestration_retrain_settings": retrain_settings}
