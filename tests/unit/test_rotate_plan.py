"""Unit tests of rotate.yml's plan (plugins/filter/platform_rotate.py): the names an inventory's
credentials have, and the layers each rotation runs with each one's rotate list."""

from __future__ import annotations

import yaml

import platform_rotate as rotate
from conftest import ROOT

USERS = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())["platform_object_store_users"]


def test_every_credential_of_an_inventory_has_a_name():
    names = rotate.catalogue("minio", USERS, ["team-vision"], ["default", "batch"])
    assert list(names) == sorted(names)
    assert set(names) == {
        *(f"object-store/{u}" for u in ["root", "mlflow", "kserve", "argo", "training", "inference-logger", "postgres", "velero", "team-vision"]),
        "tracking/admin", "tracking/training", "tracking/flask", "tracking/team-vision",
        "observability/grafana", "observability/monitoring-ui",
        "serving/default", "serving/batch",
        "orchestration/argocd", "orchestration/argocd-server", "orchestration/workflows-ui",
    }
    assert names["object-store/team-vision"]["file"] == "object-store.yml" and names["object-store/team-vision"]["entry"] == "team-vision"


def test_an_external_object_store_has_no_keys_to_rotate():
    names = rotate.catalogue("external", USERS, ["team-vision"], ["default"])
    assert not [name for name in names if name.startswith("object-store/")]
    assert "tracking/team-vision" in names


def test_each_rotation_runs_the_layer_that_keeps_it_and_those_that_read_it_in_site_order():
    names = rotate.catalogue("minio", USERS, ["team-vision"], ["default"])
    runs = {name: (plan["layers"], rotate.rotate_lists(plan)) for name, plan in names.items()}
    assert runs["object-store/mlflow"] == (["storage", "tracking"], {"storage": ["mlflow"], "tracking": []})
    assert runs["object-store/training"] == (["storage", "tracking"], {"storage": ["training"], "tracking": []})
    assert runs["object-store/velero"] == (["storage", "backup"], {"storage": ["velero"], "backup": []})
    assert runs["object-store/inference-logger"] == (["storage", "serving"], {"storage": ["inference-logger"], "serving": []})
    assert runs["object-store/team-vision"] == (["storage", "tenancy"], {"storage": ["team-vision"], "tenancy": []})
    assert runs["object-store/root"] == (["storage"], {"storage": ["root"]})
    assert runs["object-store/kserve"][0] == runs["object-store/argo"][0] == runs["object-store/postgres"][0] == ["storage"]
    assert runs["tracking/admin"] == (["tracking"], {"tracking": ["admin"]})
    assert runs["tracking/team-vision"] == (["tracking", "tenancy"], {"tracking": ["team-vision"], "tenancy": []})
    assert runs["observability/grafana"] == (["observability"], {"observability": ["grafana"]})
    assert runs["serving/default"] == (["serving"], {"serving": ["default"]})
    assert runs["orchestration/workflows-ui"] == (["orchestration"], {"orchestration": ["workflows-ui"]})
    for layers, _ in runs.values():
        assert layers == [layer for layer in rotate.LAYER_ORDER if layer in layers]


def test_an_unknown_or_missing_name_is_named_with_every_valid_name():
    names = rotate.catalogue("minio", USERS, [], ["default"])
    assert rotate.rotate_problems("tracking/admin", names) == []
    for given, said in (("object-store/nobody", "'object-store/nobody'"), ("mlflow", "'mlflow'"), ("", "nothing"), (None, "nothing")):
        (problem,) = rotate.rotate_problems(given, names)
        assert problem.startswith(f"rotate is {said}, which is not a credential of this inventory. Fix: -e rotate=<name>, one of: ")
        assert problem.endswith(", ".join(names))
