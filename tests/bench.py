"""`make bench`: how the installer's cost grows with the inventory (docs/scale.md).

In a copy of the project (as an operator's checkout, so nothing here touches this one's .state/),
it generates inventories of each size from inventories/production: its three control planes,
two workers and three GPU hosts, then more workers and GPU hosts in the same proportions (one
in five a GPU host, A100 with MIG, H100 whole or time-sliced in turn), each with its own
address in a /16 (production's node CIDR is a /24). For each size it times, as the median of --runs runs, the README's own commands:

- preflight: `site.yml --tags preflight_inventory`;
- render: the README's gitops render of every cluster layer, into a temporary tree;
- layer <name>: that render again with `--tags <name>` only, on the tree it wrote (a no-op
  re-run of one layer, as an SRE upgrading it runs);
- add a worker: `playbooks/render-compute.yml --limit <a new worker>` (what layer 1 would give
  the one new node, contacting no host).

It prints a table (each figure, and its ratio to the smallest size's) and writes the same as
JSON (--out). Nothing is contacted: preflight and the renders are controller-only.

    .venv/bin/python tests/bench.py [--sizes 8,100,600] [--runs 3] [--only preflight,render]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import BIN, ROOT, gitops_render_command, project_copy, readme_command  # noqa: E402

LAYERS = ["network", "storage", "observability", "gpu", "serving", "tracking", "orchestration", "tenancy", "backup"]
GPU_KINDS = [
    {"gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_sharing": "mig", "gpu_mig_config": "balanced-inference"},
    {"gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_sharing": "exclusive"},
    {"gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_sharing": "time-slicing", "gpu_time_slicing_replicas": 4},
]
NEW_WORKER = "wk-new-01"


def inventory_of(size: int, base: dict) -> dict:
    """production's hosts.yml with workers and GPU hosts added up to size hosts, and one more
    worker, NEW_WORKER, the node being added (so size + 1 hosts in all)."""
    hosts = json.loads(json.dumps(base))
    children = hosts["all"]["children"]
    present = set(children["control_plane"]["hosts"]) | set(children["workers"]["hosts"])
    extra = size - len(present)
    if extra < 0:
        raise SystemExit(f"--sizes: {size} is smaller than production's {len(present)} hosts")
    for i in range(extra):
        address = f"10.20.{10 + i // 250}.{i % 250 + 1}"
        if i % 5 == 4:
            name = f"gpu-bench-{i:04d}"
            children["gpu"]["hosts"][name] = dict(GPU_KINDS[(i // 5) % len(GPU_KINDS)])
        else:
            name = f"wk-bench-{i:04d}"
        children["workers"]["hosts"][name] = {"ansible_host": address}
    children["workers"]["hosts"][NEW_WORKER] = {"ansible_host": "10.20.9.1"}
    return hosts


def make_inventories(project: Path, sizes) -> dict:
    """{size: inventory name} in project's inventories/, each production's group_vars and a
    generated hosts.yml."""
    base = yaml.safe_load((project / "inventories" / "production" / "hosts.yml").read_text())
    names = {}
    for size in sizes:
        name = f"bench-{size}"
        target = project / "inventories" / name
        (target / "group_vars").mkdir(parents=True)
        group_vars = (project / "inventories" / "production" / "group_vars" / "all.yml").read_text()
        # 600 hosts fit neither production's /24 of node addresses nor its /16 of pod
        # addresses (a /24 per node): a /16 and a /14.
        for before, after in (("compute_node_cidr: 10.20.0.0/24\n", "compute_node_cidr: 10.20.0.0/16\n"),
                              ("compute_pod_cidr: 10.128.0.0/16\n", "compute_pod_cidr: 10.128.0.0/14\n")):
            assert before in group_vars, f"inventories/production/group_vars/all.yml has no {before.strip()}"
            group_vars = group_vars.replace(before, after)
        (target / "group_vars" / "all.yml").write_text(group_vars)
        (target / "hosts.yml").write_text(yaml.safe_dump(inventory_of(size, base), sort_keys=False))
        names[size] = name
    return names


def timed(project: Path, argv, env=None) -> float:
    """Seconds of one ansible-playbook run in project; a failed run stops the benchmark."""
    began = time.monotonic()
    result = subprocess.run([str(BIN / "ansible-playbook"), *argv], cwd=project, capture_output=True, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", **(env or {})), check=False)
    took = time.monotonic() - began
    if result.returncode != 0:
        raise SystemExit(f"bench: `ansible-playbook {' '.join(argv)}` failed in {project}:\n{result.stdout[-4000:]}{result.stderr[-2000:]}")
    return took


def commands(inventory: str, tree: Path) -> dict:
    """{figure: argv} of the README's commands for one inventory."""
    fill = lambda argv: [a.format(inventory=f"inventories/{inventory}", tree=tree) for a in argv]  # noqa: E731
    render = fill(gitops_render_command())
    tags = render.index("--tags")
    figures = {
        "preflight": fill(readme_command("site.yml", tags="preflight_inventory")),
        "render": render,
    }
    for layer in LAYERS:
        figures[f"layer {layer}"] = render[: tags + 1] + [layer] + render[tags + 2:]
    figures["add a worker"] = fill(readme_command("playbooks/render-compute.yml")) + ["--limit", NEW_WORKER]
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,100,600", help="inventory sizes (hosts), comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="runs of each figure; the median is reported")
    parser.add_argument("--only", default="", help="figures to time (preflight, render, layers, add a worker), comma-separated")
    parser.add_argument("--out", default=str(ROOT / ".cache" / "bench" / "bench.json"), help="where the JSON goes")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    results = {"sizes": sizes, "runs": args.runs, "cpus": os.cpu_count(), "seconds": {}}
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        project = project_copy(Path(work) / "project")
        names = make_inventories(project, sizes)
        for size in sizes:
            tree = Path(work) / f"tree-{size}"
            tree.mkdir()
            for figure, argv in commands(names[size], tree).items():
                group = "layers" if figure.startswith("layer ") else figure
                if only and figure not in only and group not in only:
                    continue
                if figure.startswith("layer ") and not any(tree.iterdir()):
                    timed(project, commands(names[size], tree)["render"])  # the tree a re-run finds
                runs = [timed(project, argv) for _ in range(args.runs)]
                results["seconds"].setdefault(figure, {})[str(size)] = round(statistics.median(runs), 2)
                print(f"{figure:<22} {size:>5} hosts  {statistics.median(runs):7.2f} s  (runs: {', '.join(f'{r:.2f}' for r in runs)})", flush=True)
    smallest = str(sizes[0])
    print(f"\n{'figure':<22}" + "".join(f"{str(s) + ' hosts':>16}" for s in sizes))
    for figure, by_size in results["seconds"].items():
        cells = [f"{by_size[str(s)]:.2f} s" + (f" ({by_size[str(s)] / by_size[smallest]:.1f}x)" if s != sizes[0] else "") for s in sizes]
        print(f"{figure:<22}" + "".join(f"{c:>16}" for c in cells))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
