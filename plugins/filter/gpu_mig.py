"""What each MIG-capable NVIDIA GPU can hold, and whether a layout fits.

The catalogue lists the GPU instance profiles of every product the platform
supports for MIG (NVIDIA's MIG User Guide, "Supported MIG Profiles", and
``nvidia-smi mig -lgip`` / ``-lgipp`` on each product): per profile the
compute slices it takes, the memory slices it takes, how many instances one
GPU holds at most, and the memory slices it may start at.  A layout (profile
to count, applied to every GPU of a host by the MIG manager) is valid when
every profile exists on the product, no count exceeds its limit, the compute
and memory slices add up within the GPU, and the instances can actually be
placed: each profile may only start at certain memory slices (on an A100 a 2g
instance starts at slice 0, 2 or 4, never 6, and no 1g instance takes slice
7), so sums that fit are necessary but, in general, not enough.

Products that cannot do MIG at all (GeForce, L4, L40S, V100 and friends) are
recognised so the message can say so and name the alternatives.

Everything is plain Python on plain data, unit-tested over the whole
catalogue; the filters at the bottom are what the preflight and gpu roles use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

MIG_STRATEGIES = ("single", "mixed")


@dataclass(frozen=True)
class Profile:
    compute: int  # compute slices (the "Ng" in the name)
    memory: int  # memory slices
    limit: int  # instances one GPU holds at most
    starts: tuple  # memory slices an instance may start at


@dataclass(frozen=True)
class Product:
    name: str  # as the catalogue calls it
    compute_slices: int
    memory_slices: int
    profiles: dict


def _seven_slice(one, double, half, full):
    """The profiles of 7-compute/8-memory-slice GPUs (A100, H100, H200), by the sizes
    in their names (GB of one, two, four and eight memory slices): the placements
    are the same on all of them."""
    return {
        f"1g.{one}gb": Profile(1, 1, 7, (0, 1, 2, 3, 4, 5, 6)),
        f"1g.{one}gb+me": Profile(1, 1, 1, (0, 1, 2, 3, 4, 5, 6)),
        f"1g.{double}gb": Profile(1, 2, 4, (0, 2, 4, 6)),
        f"2g.{double}gb": Profile(2, 2, 3, (0, 2, 4)),
        f"3g.{half}gb": Profile(3, 4, 2, (0, 4)),
        f"4g.{half}gb": Profile(4, 4, 1, (0,)),
        f"7g.{full}gb": Profile(7, 8, 1, (0,)),
    }


CATALOGUE = {
    "A100-40GB": Product("A100-40GB", 7, 8, _seven_slice(5, 10, 20, 40)),
    "A100-80GB": Product("A100-80GB", 7, 8, _seven_slice(10, 20, 40, 80)),
    "H100-80GB": Product("H100-80GB", 7, 8, _seven_slice(10, 20, 40, 80)),
    "H100-NVL": Product("H100-NVL", 7, 8, _seven_slice(12, 24, 47, 94)),
    "H200": Product("H200", 7, 8, _seven_slice(18, 35, 71, 141)),
    "A30": Product(
        "A30",
        4,
        4,
        {
            "1g.6gb": Profile(1, 1, 4, (0, 1, 2, 3)),
            "1g.6gb+me": Profile(1, 1, 1, (0, 1, 2, 3)),
            "2g.12gb": Profile(2, 2, 2, (0, 2)),
            "2g.12gb+me": Profile(2, 2, 1, (0, 2)),
            "4g.24gb": Profile(4, 4, 1, (0,)),
        },
    ),
}

# gpu_product as nvidia-smi names it or GPU Feature Discovery labels it
# (nvidia.com/gpu.product: spaces become dashes), upper-cased, without the
# leading NVIDIA-, matched in order.
ALIASES = (
    (re.compile(r"^A100-(SXM4|PCIE)-40GB$"), "A100-40GB"),
    (re.compile(r"^A100-(SXM4-80GB|80GB-PCIE|PCIE-80GB)$"), "A100-80GB"),
    (re.compile(r"^A30(-PCIE)?$"), "A30"),
    (re.compile(r"^H100-(80GB-HBM3|SXM5-80GB|PCIE|80GB-PCIE)$"), "H100-80GB"),
    (re.compile(r"^H100-NVL$"), "H100-NVL"),
    (re.compile(r"^H200(-NVL|-SXM5-141GB|-141GB-HBM3E)?$"), "H200"),
)
# Data-centre and workstation GPUs without MIG, and every GeForce.
NO_MIG = re.compile(
    r"^(GEFORCE-.*|TITAN.*|QUADRO.*|RTX-.*|TESLA-.*|(TESLA-)?(V100|P100|P40|P4|T4|K80)(-.*)?|A2|A10|A10G|A16|A40|L4|L20|L40|L40S|A800-40GB-ACTIVE)$"
)


def normalise(product):
    text = re.sub(r"\s+", "-", str(product).strip()).upper()
    return text[len("NVIDIA-"):] if text.startswith("NVIDIA-") else text


def lookup(product):
    """('mig', Product) | ('no-mig', None) | ('unknown', None)."""
    name = normalise(product)
    for pattern, key in ALIASES:
        if pattern.match(name):
            return "mig", CATALOGUE[key]
    if NO_MIG.match(name):
        return "no-mig", None
    return "unknown", None


def supported_products():
    return sorted(CATALOGUE)


def place(product, layout):
    """One placement of the layout's instances ({profile: [start slices]}), or None."""
    instances = sorted(
        ((name, product.profiles[name]) for name, count in layout.items() for _ in range(count)),
        key=lambda item: (-item[1].memory, len(item[1].starts), item[0]),
    )
    used = [False] * product.memory_slices
    chosen = []

    def fits(profile, start):
        return start + profile.memory <= product.memory_slices and not any(used[start : start + profile.memory])

    def search(index):
        if index == len(instances):
            return True
        name, profile = instances[index]
        # Same-profile instances take ascending starts, so each set is tried once.
        floor = chosen[-1][1] + 1 if chosen and chosen[-1][0] == name else 0
        for start in profile.starts:
            if start < floor or not fits(profile, start):
                continue
            for slot in range(start, start + profile.memory):
                used[slot] = True
            chosen.append((name, start))
            if search(index + 1):
                return True
            chosen.pop()
            for slot in range(start, start + profile.memory):
                used[slot] = False
        return False

    if not search(0):
        return None
    placement = {}
    for name, start in chosen:
        placement.setdefault(name, []).append(start)
    return {name: sorted(starts) for name, starts in placement.items()}


def layout_problems(product_name, layout, where):
    """Every reason a layout does not fit one GPU of the product; `where` begins each message."""
    kind, product = lookup(product_name)
    if kind == "no-mig":
        return [
            f"{where}: {product_name} cannot do MIG (the hardware has no MIG support). "
            "Fix: set gpu_sharing: time-slicing to let pods share each GPU in turns, or exclusive to give each pod whole GPUs."
        ]
    if kind == "unknown":
        return [
            f"{where}: {product_name} is not in the MIG catalogue (MIG products supported: {', '.join(supported_products())}). "
            "Fix: set gpu_product to the name nvidia-smi prints (for example NVIDIA-H100-80GB-HBM3), or use gpu_sharing: time-slicing or exclusive."
        ]
    problems = []
    known = {}
    for name in _order(layout):
        count = layout[name]
        if name not in product.profiles:
            problems.append(
                f"{where}: profile {name} does not exist on {product_name} ({product.name}). "
                f"Fix: use its profiles: {', '.join(product.profiles)}."
            )
            continue
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            problems.append(f"{where}: {name}: count {count!r} must be a positive integer.")
            continue
        limit = product.profiles[name].limit
        if count > limit:
            problems.append(f"{where}: {count} x {name} on {product_name}, but one GPU holds at most {limit} x {name}. Fix: ask for {limit} or fewer.")
            continue
        known[name] = count
    if problems:
        return problems
    spelled = " + ".join(f"{known[name]} x {name}" for name in _order(known))
    compute = sum(product.profiles[n].compute * c for n, c in known.items())
    memory = sum(product.profiles[n].memory * c for n, c in known.items())
    if compute > product.compute_slices:
        problems.append(
            f"{where}: {spelled} takes {compute} compute slices, and {product_name} has {product.compute_slices}. Fix: drop or shrink instances until they fit."
        )
    if memory > product.memory_slices:
        problems.append(
            f"{where}: {spelled} takes {memory} memory slices, and {product_name} has {product.memory_slices}. Fix: drop or shrink instances until they fit."
        )
    me = [n for n in _order(known) if "+me" in n]
    if sum(known[n] for n in me) > 1:
        problems.append(f"{where}: {' and '.join(me)} each need the GPU's one set of media engines; one +me instance fits. Fix: keep one.")
    if not problems and place(product, known) is None:
        starts = "; ".join(f"{n} at slice {', '.join(map(str, product.profiles[n].starts))}" for n in _order(known))
        problems.append(
            f"{where}: {spelled} fits the slice counts, but {product_name} cannot place it: instances may only start at fixed slices ({starts}). "
            "Fix: choose a layout nvidia-smi mig -lgipp can place, for example by swapping two small instances for one larger."
        )
    return problems


def _order(names):
    """Profiles largest first (compute, then memory), as nvidia-smi lists them."""

    def key(name):
        match = re.match(r"^(?:\d+c\.)?(\d+)g\.(\d+)gb", name)
        return (-int(match.group(1)), -int(match.group(2)), name) if match else (0, 0, name)

    return sorted(names, key=key)


def homogeneous(layout):
    return len(layout) == 1


def mig_problems(hosts, layouts, strategy):
    """Problems of the gpu group's MIG settings.

    hosts: {host: {gpu_product, gpu_sharing, gpu_mig_config}} for the gpu group.
    layouts: gpu_mig_configs. strategy: gpu_mig_strategy (single or mixed).
    """
    problems = []
    if strategy not in MIG_STRATEGIES:
        problems.append(f"gpu_mig_strategy: {strategy!r} is not one of single, mixed. Fix: use mixed (each profile its own resource) or single (one profile per node).")
    for host in sorted(hosts):
        hv = hosts[host]
        product = hv.get("gpu_product")
        if not product:
            continue  # the inventory check names it
        sharing = hv.get("gpu_sharing")
        if sharing != "mig":
            continue
        name = hv.get("gpu_mig_config")
        layout = layouts.get(name) if isinstance(layouts, Mapping) else None
        if not isinstance(layout, Mapping) or not layout:
            kind, _ = lookup(product)
            if kind == "no-mig":
                problems += layout_problems(product, {}, f"host {host}: gpu_sharing is mig")
            continue  # an unknown layout name is the inventory check's
        where = f"host {host}: gpu_mig_config {name}"
        problems += layout_problems(product, dict(layout), where)
        if strategy == "single" and not homogeneous(layout):
            problems.append(
                f"host {host}: gpu_mig_strategy is single, but gpu_mig_config {name} mixes {', '.join(_order(layout))}; "
                "with single every MIG device of a node must be the same profile. Fix: set gpu_mig_strategy: mixed, or give the host a one-profile layout."
            )
    return problems


def _data(value):
    """Ansible's lazy, tagged values as plain data (what yaml.safe_dump and comparisons need)."""
    return json.loads(json.dumps(value))


def gpu_mig_problems(hostvars, groups, layouts=None, strategy="mixed"):
    """Filter: ``hostvars | mlplatform.baremetal.gpu_mig_problems(groups, gpu_mig_configs, gpu_mig_strategy)``."""
    hosts = {
        host: {key: _data(hostvars[host][key]) for key in ("gpu_product", "gpu_sharing", "gpu_mig_config") if key in hostvars[host]}
        for host in groups.get("gpu", ())
    }
    return mig_problems(hosts, _data(layouts or {}), str(strategy))


def gpu_mig_capable(product):
    """Filter: the product is in the MIG catalogue."""
    return lookup(product)[0] == "mig"


class FilterModule:
    def filters(self):
        return {"gpu_mig_problems": gpu_mig_problems, "gpu_mig_capable": gpu_mig_capable}
