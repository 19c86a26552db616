"""What the serving layer checks and computes.

- ``serving_problems``: the serving settings an operator can get wrong, each named
  with its fix (preflight, and the role itself for runs with --tags serving);
- ``serving_token_map``: the inference-gateway's token file, an nginx ``map`` body
  from the Authorization header to the client's name (only letters and digits are
  generated, so no token needs escaping; anything else is refused).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

TOKEN = re.compile(r"^[A-Za-z0-9]{32,}$")
CLIENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RUNTIMES = ("sklearn", "xgboost", "triton", "huggingface")
MODES = ("raw", "serverless")


def _closest(value, choices):
    match = difflib.get_close_matches(str(value), choices, n=1)
    return f" (did you mean {match[0]}?)" if match else ""


def problems(settings, gpu_products=(), gpu_classes=None):
    """settings: the serving role's variables (defaults under the inventory's values);
    gpu_products: the gpu_product of every host in the gpu group."""
    found = []
    mode = settings.get("serving_deployment_mode")
    if mode not in MODES:
        found.append(f"serving_deployment_mode: {mode!r} is not one of {', '.join(MODES)}{_closest(mode, MODES)}. Fix: use raw (no Knative) unless Knative Serving runs on the cluster.")
    for variable in ("serving_runtimes", "serving_inference_clients"):
        if not isinstance(settings.get(variable) or [], (list, tuple)):
            found.append(f"{variable}: {settings[variable]!r} must be a list, such as [sklearn, xgboost]. Fix: write it as a YAML list (with -e, as JSON).")
            settings = dict(settings, **{variable: []})
    for runtime in settings.get("serving_runtimes") or []:
        if runtime not in RUNTIMES:
            found.append(f"serving_runtimes: {runtime!r} is not a runtime the platform installs{_closest(runtime, RUNTIMES)}. Fix: list some of {', '.join(RUNTIMES)}.")
    clients = list(settings.get("serving_inference_clients") or [])
    if not clients:
        found.append("serving_inference_clients: empty, so no one could call an InferenceService. Fix: name at least one client, such as [default].")
    for client in clients:
        if not CLIENT.match(str(client)):
            found.append(f"serving_inference_clients: {client!r} must be a DNS label (lower-case letters, digits, -). Fix: rename it.")
    for client in sorted({c for c in clients if clients.count(c) > 1}):
        found.append(f"serving_inference_clients: {client!r} is listed twice. Fix: list each client once.")
    for variable, least in (("serving_inference_logger_replicas", 1), ("serving_inference_logger_flush_seconds", 1),
                            ("serving_inference_logger_batch_events", 1), ("serving_inference_logger_max_pending_events", 100)):
        value = settings.get(variable)
        if variable in settings and (isinstance(value, bool) or not str(value).strip().isdigit() or int(str(value)) < least):
            found.append(f"{variable}: {value!r} must be a whole number of at least {least}. Fix: use, for example, the default in roles/serving/defaults/main.yml.")
    wanted = settings.get("serving_gpu_products") or []
    classes = gpu_classes if isinstance(gpu_classes, Mapping) else {}
    present = sorted({str(p) for p in gpu_products if p})
    if isinstance(wanted, str):
        if wanted not in classes:
            found.append(f"serving_gpu_products: {wanted!r} is not a class of gpu_classes ({', '.join(sorted(classes)) or 'none defined'}). Fix: name a class, or list gpu_product values.")
    else:
        for product in wanted:
            if str(product) not in present:
                found.append(
                    f"serving_gpu_products: {product!r} is the gpu_product of no host in group gpu ({', '.join(present) or 'the group is empty'}), "
                    "so the GPU runtimes could never be scheduled. Fix: name a product your gpu hosts hold."
                )
    return found


def token_map(credentials):
    """{client: {token}} -> lines '"Bearer <token>" <client>;', sorted by client."""
    lines = []
    for client, fields in sorted(credentials.items()):
        token = str(fields["token"])
        if not CLIENT.match(str(client)):
            raise ValueError(f"inference client {client!r} must be a DNS label")
        if not TOKEN.match(token):
            raise ValueError(f"the token of inference client {client!r} must be at least 32 letters and digits")
        lines.append(f'"Bearer {token}" {client};')
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"serving_token_map": token_map, "serving_problems": problems}
