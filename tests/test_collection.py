"""The installer as the Ansible collection mlplatform.baremetal, taken the way Ansible users take
it: built from the checkout with `ansible-galaxy collection build`, installed into an operator's
own project directory (its ansible.cfg names where collections go), and run there by fully
qualified name with the README's gitops render (`ansible-playbook mlplatform.baremetal.site`).
Nothing of the checkout is on any path of that run. With the same credentials, the tree it
writes is the checkout's render of the same inventory, byte for byte (docs/collection.md)."""

from __future__ import annotations

import json
import re
import shutil
import tarfile

import pytest
import yaml

from conftest import ROOT, digest, gitops_render_command, run, state_dir, tool

GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    result = run([tool("ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT)])
    assert result.returncode == 0, result.stdout + result.stderr
    (archive,) = dist.glob("*.tar.gz")
    return archive


def test_the_archive_holds_the_installer_and_none_of_the_checkouts_tooling(built):
    assert built.name == f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    with tarfile.open(built) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    tops = {name.split("/", 1)[0] for name in names}
    for needed in ("roles", "playbooks", "plugins", "group_vars", "meta", "docs", "inventories", "README.md"):
        assert needed in tops, f"the collection lacks {needed}"
    for role in (ROOT / "roles").iterdir():
        assert f"roles/{role.name}/meta/argument_specs.yml" in names, f"role {role.name} is not in the collection"
    assert "playbooks/site.yml" in names
    for tooling in ("tests", "molecule", ".state", ".cache", "collections", ".git", "site.yml", "ansible.cfg", ".venv"):
        assert tooling not in tops, f"the collection carries the checkout's {tooling}"
    assert manifest["collection_info"]["dependencies"] == GALAXY["dependencies"]
    # Its dependencies are the collections the checkout pins for plain ansible-core.
    pinned = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]}
    for name, spec in GALAXY["dependencies"].items():
        assert spec == f">={pinned[name]}", f"galaxy.yml asks {name} {spec}, collections/requirements.yml pins {pinned[name]}"


def test_version_matches_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'^version = "{re.escape(GALAXY["version"])}"$', pyproject, flags=re.M), "galaxy.yml and pyproject.toml versions differ"


@pytest.mark.long
@pytest.mark.parametrize("rendered", ["production"], indirect=True)
def test_the_installed_collection_renders_the_checkouts_tree(built, rendered, tmp_path):
    inventory, checkout_tree, _ = rendered
    # An operator's project: their ansible.cfg, their inventory, the collection installed beside them.
    operator = tmp_path / "operator"
    operator.mkdir()
    (operator / "ansible.cfg").write_text("[defaults]\ncollections_path = ./collections\n")
    shutil.copytree(ROOT / "inventories" / inventory, operator / inventory)
    result = run([tool("ansible-galaxy"), "collection", "install", str(built)], cwd=operator)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = operator / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (installed / "playbooks" / "site.yml").is_file()
    listing = run([tool("ansible-galaxy"), "collection", "list", FQCN, "--format", "json"], cwd=operator)
    assert listing.returncode == 0, listing.stderr
    assert list(json.loads(listing.stdout)) == [str(installed.parent.parent)], "only the installed copy is found"

    # The same credentials as the checkout's render, where the collection keeps its state: beside
    # the operator's ansible.cfg, as in the checkout (.state/<inventory>/).
    credentials = state_dir(operator, inventory) / "credentials"
    shutil.copytree(state_dir(checkout_tree.parent / f"{checkout_tree.name}-project", inventory) / "credentials", credentials)

    template = gitops_render_command()
    assert template[0] == "site.yml"
    tree = tmp_path / "tree"
    argv = [FQCN + ".site", *(a.format(inventory=inventory, tree=tree) for a in template[1:])]
    result = run([tool("ansible-playbook"), *argv], cwd=operator)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(ROOT) not in result.stdout, "the run read something of the checkout"
    assert digest(tree) == digest(checkout_tree), "the installed collection renders another tree than the checkout"
    assert sorted(p.name for p in (operator / ".state").iterdir()) == [inventory], "state went elsewhere than .state/<inventory>"

