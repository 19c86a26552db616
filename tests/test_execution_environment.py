"""The execution environment AWX runs the installer in (execution-environment.yml, docs/awx.md).

Its build context is written offline by the real ansible-builder (`create` pulls no image and
installs nothing), and every pin in it is the checkout's: ansible-core and the Python packages
pyproject.toml's, the collections collections/requirements.yml's, which are the versions the
`ansible` package of the checkout's virtualenv carries, the collection itself built from the
checkout. No image is built here (that needs a registry and the package mirrors)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sysconfig
import tarfile
import tomllib
from pathlib import Path

import yaml

from conftest import ROOT, run, tool

# The files the definition and its cross-checks read, relative to the project's root.
DEFINITION_FILES = ["execution-environment.yml", "requirements.txt", "bindep.txt", "pyproject.toml", "collections/requirements.yml"]
# pyproject.toml's runtime packages the EE does not take from requirements.txt: ansible-core is
# the definition's ansible_core, and `ansible` (ansible-core plus a few hundred collections) is
# replaced by the collections in collections/requirements.yml.
NOT_IN_REQUIREMENTS = {"ansible", "ansible-core"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _name(requirement):
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def runtime_pins(root):
    """pyproject.toml's runtime dependencies: {name: 'name==version' as written}."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return {_name(d): d for d in project["dependencies"]}


def requirement_lines(text):
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def collection_pins(requirements):
    return {c["name"]: str(c.get("version", "")) for c in (requirements or {}).get("collections") or []}


def ee_problems(root):
    """What in execution-environment.yml is unpinned, or pinned other than the checkout."""
    ee = yaml.safe_load((root / "execution-environment.yml").read_text())
    deps = ee.get("dependencies") or {}
    pins = runtime_pins(root)
    found = []
    if ee.get("version") != 3:
        found.append("version: must be 3 (ansible-builder 3.x's schema)")
    image = str(((ee.get("images") or {}).get("base_image") or {}).get("name", ""))
    match = re.fullmatch(r"[^@\s]+:(?P<tag>[^:@/\s]+)@sha256:[0-9a-f]{64}", image)
    if not match or match["tag"] == "latest":
        found.append(f"images.base_image.name: {image!r} must name a tag (not latest) and that tag's digest")
    core = str((deps.get("ansible_core") or {}).get("package_pip", ""))
    if core != pins["ansible-core"]:
        found.append(f"dependencies.ansible_core: {core!r} differs from pyproject.toml's {pins['ansible-core']!r}")
    runner = str((deps.get("ansible_runner") or {}).get("package_pip", ""))
    if not PIN.match(runner):
        found.append(f"dependencies.ansible_runner: {runner!r} is not pinned (name==version)")
    python = deps.get("python")
    lines = requirement_lines((root / python).read_text()) if isinstance(python, str) else list(python or [])
    given = {}
    for line in lines:
        if not PIN.match(line):
            found.append(f"dependencies.python: {line!r} is not pinned (name==version)")
        given[_name(line)] = line
    for name, pin in sorted(pins.items()):
        if name in NOT_IN_REQUIREMENTS:
            continue
        if name not in given:
            found.append(f"dependencies.python: lacks {pin} (pyproject.toml)")
        elif given[name].lower() != pin.lower():
            found.append(f"dependencies.python: {given[name]} differs from pyproject.toml's {pin}")
    for name in sorted(set(given) - set(pins)):
        found.append(f"dependencies.python: {given[name]} is not a runtime dependency in pyproject.toml")
    galaxy = deps.get("galaxy")
    wanted = collection_pins(yaml.safe_load((root / "collections" / "requirements.yml").read_text()))
    if isinstance(galaxy, str) and "\n" not in galaxy:
        have = collection_pins(yaml.safe_load((root / galaxy).read_text())) if (root / galaxy).is_file() else {}
    else:
        have = collection_pins(yaml.safe_load(galaxy) if isinstance(galaxy, str) else galaxy)
    for name in sorted(set(wanted) | set(have)):
        if wanted.get(name) != have.get(name):
            found.append(f"dependencies.galaxy: {name} {have.get(name) or 'missing'}, collections/requirements.yml has {wanted.get(name) or 'none'}")
    if deps.get("system") != "bindep.txt":
        found.append("dependencies.system: must be bindep.txt (the collection's own system requirements)")
    if not any("mlplatform-baremetal-" in str(f.get("src", "")) for f in ee.get("additional_build_files") or []):
        found.append("additional_build_files: the collection built from the checkout is not in the image")
    return found


def test_the_definition_pins_what_the_checkout_pins():
    assert ee_problems(ROOT) == []


def test_a_pin_that_differs_from_the_checkout_is_found(tmp_path):
    for name in DEFINITION_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    assert ee_problems(tmp_path) == []
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("kubernetes==36.0.3", "kubernetes==36.0.2"))
    ee = yaml.safe_load((tmp_path / "execution-environment.yml").read_text())
    ee["dependencies"]["ansible_runner"]["package_pip"] = "ansible-runner"
    ee["dependencies"]["galaxy"] = {"collections": [
        {"name": c["name"], "version": "11.0.0" if c["name"] == "community.general" else c["version"]}
        for c in yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]]}
    ee["images"]["base_image"]["name"] = "registry.access.redhat.com/ubi9/ubi:latest"
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(ee))
    problems = "\n".join(ee_problems(tmp_path))
    assert "dependencies.python: kubernetes==36.0.2 differs from pyproject.toml's kubernetes==36.0.3" in problems
    assert "dependencies.ansible_runner: 'ansible-runner' is not pinned" in problems
    assert "dependencies.galaxy: community.general 11.0.0, collections/requirements.yml has 11.4.2" in problems
    assert "images.base_image.name: 'registry.access.redhat.com/ubi9/ubi:latest' must name a tag" in problems


def test_the_collections_are_the_ones_the_checkouts_ansible_package_carries():
    """collections/requirements.yml (the EE's collections) pins what the suite runs with."""
    carried = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"
    for name, version in collection_pins(yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())).items():
        manifest = carried / name.replace(".", "/") / "MANIFEST.json"
        assert json.loads(manifest.read_text())["collection_info"]["version"] == version, name


def docs_build_commands():
    """docs/awx.md's two commands that build the image: the collection, then ansible-builder."""
    lines = [line for line in (ROOT / "docs" / "awx.md").read_text().splitlines() if line.startswith(".venv/bin/ansible-")]
    galaxy = [shlex.split(line) for line in lines if line.startswith(".venv/bin/ansible-galaxy collection build ")]
    builder = [shlex.split(line) for line in lines if line.startswith(".venv/bin/ansible-builder build ")]
    assert len(galaxy) == 1 and len(builder) == 1, "docs/awx.md builds the execution environment in two commands"
    return galaxy[0], builder[0]


def test_ansible_builder_writes_the_build_context_offline(project, tmp_path):
    """docs/awx.md's build, in a copy of the project, up to the context: the collection built
    from the checkout, then `ansible-builder create` (what `build` runs before it pulls the base
    image) with the same definition, whose context must hold exactly the checkout's pinned
    requirements, collections and system packages, and the collection."""
    galaxy, builder = docs_build_commands()
    build = run([tool("ansible-galaxy"), *galaxy[1:]], cwd=project)
    assert build.returncode == 0, build.stdout + build.stderr
    context = tmp_path / "context"
    definition = builder[builder.index("-f") + 1]
    assert definition == "execution-environment.yml"
    create = run([tool("ansible-builder"), "create", "-f", definition, "-c", str(context)], cwd=project)
    assert create.returncode == 0, create.stdout + create.stderr
    made = context / "_build"
    assert (made / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()
    assert (made / "requirements.yml").read_text() == (ROOT / "collections" / "requirements.yml").read_text()
    assert (made / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    [archive] = (made / "collections").glob("mlplatform-baremetal-*.tar.gz")
    assert archive.name == f"mlplatform-baremetal-{version}.tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    # The collection carries its requirements, for any EE that installs it, and none of the checkout's state.
    assert {"requirements.txt", "bindep.txt", "roles/platform/tasks/deliver.yml", "plugins/action/platform_credentials.py"} <= names
    assert not [n for n in names if n.startswith((".state", "tests/", "build/"))]
    containerfile = (context / "Containerfile").read_text()
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert f'ARG EE_BASE_IMAGE="{ee["images"]["base_image"]["name"]}"' in containerfile
    pins = runtime_pins(ROOT)
    assert f'ARG ANSIBLE_INSTALL_REFS="{pins["ansible-core"]} {ee["dependencies"]["ansible_runner"]["package_pip"]}"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert "-r requirements.yml --collections-path \"/usr/share/ansible/collections\"" in containerfile
    assert re.search(r"RUN ansible-galaxy collection install --offline .* /build/collections/mlplatform-baremetal-\*\.tar\.gz", containerfile)
