"""AWX and Automation Platform (docs/awx.md): a job runs in a fresh container, so the platform's
credentials are given to it by an AWX credential instead of being generated and kept on a
controller's disk (platform_credentials_source: supplied).

The credential types are judged by the rules AWX applies when one is created (awx/main/fields.py:
variable names, injector keys, templates that name only the type's fields), and injected the way
AWX injects them (awx/main/models/credential: each template rendered in Jinja's sandbox, the
extra variables written as YAML with every string !unsafe, next to the job's awx_* variables).
Then the README's gitops render runs with them in a copy of the project: the production tree
comes out byte for byte as a workstation's render with those credentials, and no credentials
directory is written; a set that lacks an entry stops, naming it. No credential is printed."""

from __future__ import annotations

import re

import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from conftest import ROOT, digest, project_copy, render, render_gitops, rendered_credentials, state_dir

CREDENTIAL_TYPES = {t["name"]: t for t in yaml.safe_load((ROOT / "docs" / "examples" / "awx-credential-types.yml").read_text())}
PLATFORM, KUBECONFIG = CREDENTIAL_TYPES["ML platform credentials"], CREDENTIAL_TYPES["ML platform kubeconfig"]
# What AWX accepts (awx/main/fields.py): field ids, extra variable names at any depth, file templates.
FIELD_ID = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
EXTRA_VAR = re.compile(r"^[a-zA-Z_{}]+[a-zA-Z0-9_{}]*$")
FILE_TEMPLATE = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")
SECRET_FIELDS = ("secret_key", "password", "password_bcrypt", "token")


class _AwxDumper(yaml.SafeDumper):
    """How AWX writes a job's extra variables: every string tagged !unsafe (awx/main/utils/safe_yaml.py)."""

    def represent_data(self, data):
        if isinstance(data, str):
            return self.represent_scalar("!unsafe", data)
        return super().represent_data(data)


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, node


def awx_extra_vars(credential_type, inputs, filename="/runner/env/tmpkubeconfig"):
    """The extra variables AWX injects for a credential of this type with these inputs: empty inputs
    are left out of the template namespace (rendering as ''), each leaf rendered in the sandbox."""
    namespace = {field: value for field, value in inputs.items() if value}
    namespace["tower"] = type("Tower", (), {"filename": filename})()
    sandbox = ImmutableSandboxedEnvironment()

    def build(node):
        if isinstance(node, dict):
            return {key: build(value) for key, value in node.items()}
        return sandbox.from_string(node).render(**namespace)

    return build(credential_type["injectors"].get("extra_vars", {}))


def write_awx_job_vars(path, credential_type, inputs):
    """A job's -e @file with the credential's injection, and the awx_* variables AWX adds to every job."""
    meta = {"awx_job_id": 4711, "tower_job_id": 4711, "awx_job_launch_type": "manual", "awx_job_template_name": "ML platform production - site"}
    path.write_text(yaml.dump(awx_extra_vars(credential_type, inputs), Dumper=_AwxDumper) + yaml.dump(meta, Dumper=_AwxDumper))
    return path


def secrets_of(credentials_dir):
    found = []
    for path in sorted(credentials_dir.glob("*.yml")):
        for keys, value in _leaves(yaml.safe_load(path.read_text())):
            if keys[-1] in SECRET_FIELDS:
                found.append(str(value))
    return found


def test_the_credential_types_are_ones_awx_accepts():
    import platform_credentials_supplied as given

    for credential_type in CREDENTIAL_TYPES.values():
        fields = [field["id"] for field in credential_type["inputs"]["fields"]]
        assert all(FIELD_ID.match(f) for f in fields) and len(set(fields)) == len(fields) and "tower" not in fields
        assert set(credential_type["inputs"].get("required", [])) <= set(fields)
        assert credential_type["kind"] in ("cloud", "net")
        assert all(field.get("secret") and field.get("multiline") for field in credential_type["inputs"]["fields"])
        files = credential_type["injectors"].get("file", {})
        assert all(FILE_TEMPLATE.match(label) for label in files)
        namespace = dict.fromkeys(fields, "EXAMPLE")
        namespace["tower"] = type("Tower", (), {"filename": "EXAMPLE_FILENAME"})() if files else None
        strict = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
        for keys, template in [*_leaves(credential_type["injectors"].get("extra_vars", {})), *[((k,), v) for k, v in files.items()]]:
            assert all(EXTRA_VAR.match(key) for key in keys) or keys[0].startswith("template"), keys
            strict.from_string(template).render(**namespace)
    # One field per credentials file a layer keeps, injected under that file's name.
    injected = PLATFORM["injectors"]["extra_vars"]["platform_credentials_supplied"]
    assert {name.replace("_", "-") for name in injected} == set(given.FILES)
    assert {field["label"] for field in PLATFORM["inputs"]["fields"]} == {f"{name}.yml" for name in given.FILES}
    assert all(template == "{{ " + name + " }}" for name, template in injected.items())
    # The kubeconfig lands where every layer reads it, a platform-wide variable.
    defaults = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())
    assert set(KUBECONFIG["injectors"]["extra_vars"]) == {"platform_kubeconfig"} and "platform_kubeconfig" in defaults
    assert awx_extra_vars(KUBECONFIG, {"kubeconfig": "apiVersion: v1"}) == {"platform_kubeconfig": "/runner/env/tmpkubeconfig"}
    # docs/awx.md shows them as they are.
    types = (ROOT / "docs" / "examples" / "awx-credential-types.yml").read_text()
    assert types[types.index("- name: ML platform credentials"):] in (ROOT / "docs" / "awx.md").read_text()


def _inputs_from(credentials_dir, drop=None):
    """The ML platform credentials credential as an operator fills it: each field the content of
    that file of a workstation's credentials directory ('' for a file it does not have)."""
    inputs = {}
    for field in PLATFORM["inputs"]["fields"]:
        path = credentials_dir / field["label"]
        text = path.read_text() if path.exists() else ""
        if drop and drop[0] == field["label"]:
            entries = yaml.safe_load(text)
            del entries[drop[1]]
            text = yaml.safe_dump(entries)
        inputs[field["id"]] = text
    return inputs


@pytest.mark.parametrize("rendered", ["production"], indirect=True)
def test_a_job_given_the_credentials_renders_the_same_tree_and_writes_no_credential(rendered, tmp_path):
    inventory, tree, _ = rendered
    workstation = rendered_credentials(tree, inventory)
    job_vars = write_awx_job_vars(tmp_path / "awx-job-vars.yml", PLATFORM, _inputs_from(workstation))
    project = project_copy(tmp_path / "project")
    mine = tmp_path / "tree"
    result = render(inventory, mine, "-e", f"@{job_vars}", project=project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert not (state_dir(project, inventory) / "credentials").exists()
    assert digest(mine) == digest(tree), "the tree differs from the workstation's render with the same credentials"
    secrets = secrets_of(workstation)
    assert len(secrets) >= 15 and [s[:6] + "..." for s in secrets if s in output] == []


@pytest.mark.parametrize("rendered", ["production"], indirect=True)
def test_a_job_given_an_incomplete_set_stops_naming_the_missing_entry(rendered, tmp_path):
    inventory, tree, _ = rendered
    workstation = rendered_credentials(tree, inventory)
    job_vars = write_awx_job_vars(tmp_path / "awx-job-vars.yml", PLATFORM, _inputs_from(workstation, drop=("observability.yml", "grafana")))
    project = project_copy(tmp_path / "project")
    result = render_gitops(inventory, tmp_path / "tree", "preflight_inventory,observability", "-vvv", "-e", f"@{job_vars}", project=project)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    message = " ".join(output.split())
    assert "observability: the credentials given to this run (platform_credentials_supplied) lack grafana.password" in message
    assert "docs/awx.md" in message
    assert not (state_dir(project, inventory) / "credentials").exists()
    assert [s[:6] + "..." for s in secrets_of(workstation) if s in output] == []


def test_the_awx_setup_example_uses_the_modules_options_the_playbooks_and_the_layer_tags():
    """docs/examples/awx.yml against what it drives: every awx.awx option it sets is one the pinned
    awx.awx collection documents, every playbook it names is in the project, one template per
    layer tag of site.yml, and the credential types it creates are the ones tested above."""
    import json

    from conftest import run, tool

    [play] = yaml.safe_load((ROOT / "docs" / "examples" / "awx.yml").read_text())
    tasks = [(name, task) for task in play["tasks"] for name in task if name.startswith("awx.awx.")]
    modules = sorted({name for name, _ in tasks})
    result = run([tool("ansible-doc"), "-j", "-t", "module", *modules])
    assert result.returncode == 0, result.stderr
    documented = {name: set(doc["doc"]["options"]) for name, doc in json.loads(result.stdout).items()}

    def unknown_options(tasks):
        return [(name, sorted(set(task[name]) - documented[name])) for name, task in tasks if set(task[name]) - documented[name]]

    assert unknown_options(tasks) == []
    # A survey is not a job template option of its own (survey_spec is): the check sees it.
    [(name, template)] = tasks[-1:]
    assert unknown_options([(name, {name: dict(template[name], survey={"layer": "storage"})})]) == [(name, ["survey"])]
    playbooks = {task[name].get("playbook") for name, task in tasks if name == "awx.awx.job_template"}
    for task in play["tasks"]:
        playbooks |= {item.get("playbook") for item in task.get("loop", []) if isinstance(item, dict)}
    playbooks.discard(None)
    playbooks.discard("{{ item.playbook }}")
    assert playbooks == {"site.yml", "playbooks/upgrade.yml", "playbooks/backup.yml"}
    assert all((ROOT / playbook).is_file() for playbook in playbooks)
    layer_tags = []
    for imported in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text()):
        for layer_play in yaml.safe_load((ROOT / "playbooks" / imported["ansible.builtin.import_playbook"]).read_text()):
            if layer_play["tags"][0] not in layer_tags:
                layer_tags.append(layer_play["tags"][0])
    assert play["vars"]["awx_layers"] == layer_tags
    [types_task] = [task for task in play["tasks"] if "awx.awx.credential_type" in task]
    assert "awx-credential-types.yml" in types_task["loop"]
    loaded = [task["awx.awx.credential"] for task in play["tasks"] if "awx.awx.credential" in task]
    assert {c["credential_type"] for c in loaded} == set(CREDENTIAL_TYPES)
    [platform] = [c for c in loaded if c["credential_type"] == PLATFORM["name"]]
    assert set(platform["inputs"]) == {field["id"] for field in PLATFORM["inputs"]["fields"]}
    assert all(task.get("no_log") is True for task in play["tasks"] if "awx.awx.credential" in task)
