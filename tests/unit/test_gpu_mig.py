"""Unit tests of the MIG catalogue (plugins/filter/gpu_mig.py): every documented
layout of every supported product is accepted, and over-subscribed, impossible
or unplaceable layouts are refused with a message naming host, profile and limit."""

from __future__ import annotations

import pytest

import gpu_mig as mig

# Product names as nvidia-smi prints them, one or more per catalogue entry.
PRODUCTS = {
    "A100-40GB": ["NVIDIA A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"],
    "A100-80GB": ["NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "NVIDIA-A100-PCIE-80GB"],
    "H100-80GB": ["NVIDIA H100 80GB HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-SXM5-80GB"],
    "H100-NVL": ["NVIDIA H100 NVL"],
    "H200": ["NVIDIA H200", "NVIDIA H200 NVL"],
    "A30": ["NVIDIA A30"],
}

# The sizes in the profile names of each 7-slice product: one, two, four and eight memory slices.
SIZES = {"A100-40GB": (5, 10, 20, 40), "A100-80GB": (10, 20, 40, 80), "H100-80GB": (10, 20, 40, 80), "H100-NVL": (12, 24, 47, 94), "H200": (18, 35, 71, 141)}

# The combinations NVIDIA's MIG User Guide documents for the 7-slice GPUs
# (its A100 placement figure), by slice shape: 1 = 1g of one memory slice,
# 1w = 1g of two, 2 = 2g, 3 = 3g, 4 = 4g, 7 = 7g.
SEVEN_SLICE_LAYOUTS = [
    {"7": 1},
    {"4": 1, "3": 1},
    {"4": 1, "2": 1, "1": 1},
    {"4": 1, "1": 3},
    {"3": 2},
    {"3": 1, "2": 1, "1": 1},
    {"3": 1, "1": 3},
    {"3": 1, "2": 2},
    {"3": 1, "2": 1, "1": 2},
    {"3": 1, "1": 4},
    {"2": 3, "1": 1},
    {"2": 2, "1": 3},
    {"2": 1, "1": 5},
    {"1": 7},
    {"1w": 4},
    {"2": 3, "1w": 1},
    {"3": 1, "1w": 2},
    {"4": 1, "1w": 2},
    {"1+me": 1, "1": 6},
]
A30_LAYOUTS = [
    {"4g.24gb": 1},
    {"2g.12gb": 2},
    {"2g.12gb": 1, "1g.6gb": 2},
    {"1g.6gb": 4},
    {"2g.12gb+me": 1, "2g.12gb": 1},
    {"1g.6gb+me": 1, "1g.6gb": 3},
]


def named(product, shape):
    one, two, four, eight = SIZES[product]
    names = {"1": f"1g.{one}gb", "1+me": f"1g.{one}gb+me", "1w": f"1g.{two}gb", "2": f"2g.{two}gb", "3": f"3g.{four}gb", "4": f"4g.{four}gb", "7": f"7g.{eight}gb"}
    return {names[k]: v for k, v in shape.items()}


def documented():
    for product in SIZES:
        for shape in SEVEN_SLICE_LAYOUTS:
            yield product, named(product, shape)
    for layout in A30_LAYOUTS:
        yield "A30", layout


@pytest.mark.parametrize("product, layout", list(documented()), ids=lambda v: v if isinstance(v, str) else "+".join(f"{c}x{p}" for p, c in v.items()))
def test_every_documented_layout_is_accepted_and_placed(product, layout):
    for name in PRODUCTS[product]:
        assert mig.layout_problems(name, layout, "host gpu-01") == []
    placement = mig.place(mig.CATALOGUE[product], layout)
    assert placement is not None and {p: len(s) for p, s in placement.items()} == layout
    # The placement respects each profile's start slices and overlaps nothing.
    taken = []
    for name, starts in placement.items():
        profile = mig.CATALOGUE[product].profiles[name]
        for start in starts:
            assert start in profile.starts
            taken += range(start, start + profile.memory)
    assert len(taken) == len(set(taken)) and max(taken) < mig.CATALOGUE[product].memory_slices


@pytest.mark.parametrize("product", sorted(mig.CATALOGUE))
def test_each_profile_alone_at_its_limit_fits_and_one_more_does_not(product):
    name = PRODUCTS[product][0]
    for profile, spec in mig.CATALOGUE[product].profiles.items():
        assert mig.layout_problems(name, {profile: spec.limit}, "host gpu-01") == []
        problems = mig.layout_problems(name, {profile: spec.limit + 1}, "host gpu-01")
        assert problems == [f"host gpu-01: {spec.limit + 1} x {profile} on {name}, but one GPU holds at most {spec.limit} x {profile}. Fix: ask for {spec.limit} or fewer."]


def test_over_subscribed_compute_and_memory_are_named_with_the_limit():
    problems = mig.layout_problems("NVIDIA-A100-SXM4-80GB", {"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}, "host gpu-01: gpu_mig_config big")
    assert problems == [
        "host gpu-01: gpu_mig_config big: 1 x 4g.40gb + 1 x 3g.40gb + 1 x 1g.10gb takes 8 compute slices, and NVIDIA-A100-SXM4-80GB has 7. Fix: drop or shrink instances until they fit.",
        "host gpu-01: gpu_mig_config big: 1 x 4g.40gb + 1 x 3g.40gb + 1 x 1g.10gb takes 9 memory slices, and NVIDIA-A100-SXM4-80GB has 8. Fix: drop or shrink instances until they fit.",
    ]
    assert "takes 9 memory slices" in mig.layout_problems("NVIDIA H100 NVL", {"3g.47gb": 2, "1g.12gb": 1}, "host h")[0]


def test_a_profile_of_another_product_is_refused_with_the_right_list():
    problems = mig.layout_problems("NVIDIA H100 80GB HBM3", {"1g.5gb": 7}, "host gpu-h100-01: gpu_mig_config small")
    assert problems == [
        "host gpu-h100-01: gpu_mig_config small: profile 1g.5gb does not exist on NVIDIA H100 80GB HBM3 (H100-80GB). "
        "Fix: use its profiles: 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb."
    ]
    assert "profile 3g.20gb does not exist on NVIDIA A30" in mig.layout_problems("NVIDIA A30", {"3g.20gb": 1}, "host a")[0]


def test_only_one_media_engine_instance_fits():
    problems = mig.layout_problems("NVIDIA A30", {"1g.6gb+me": 1, "2g.12gb+me": 1}, "host a")
    assert problems == ["host a: 2g.12gb+me and 1g.6gb+me each need the GPU's one set of media engines; one +me instance fits. Fix: keep one."]


@pytest.mark.parametrize("product", ["NVIDIA GeForce RTX 4090", "NVIDIA L4", "NVIDIA L40S", "Tesla V100-SXM2-32GB", "Tesla T4", "NVIDIA A10", "NVIDIA RTX 6000 Ada Generation"])
def test_gpus_without_mig_are_named_with_the_alternatives(product):
    assert mig.lookup(product) == ("no-mig", None)
    problems = mig.layout_problems(product, {"1g.10gb": 1}, "host inf-01: gpu_mig_config small")
    assert problems == [
        f"host inf-01: gpu_mig_config small: {product} cannot do MIG (the hardware has no MIG support). "
        "Fix: set gpu_sharing: time-slicing to let pods share each GPU in turns, or exclusive to give each pod whole GPUs."
    ]


def test_an_unknown_product_lists_the_supported_ones():
    problems = mig.layout_problems("NVIDIA Z900", {"1g.10gb": 1}, "host z")
    assert problems[0].startswith("host z: NVIDIA Z900 is not in the MIG catalogue (MIG products supported: A100-40GB, A100-80GB, A30, H100-80GB, H100-NVL, H200)")


def test_sums_that_fit_are_not_enough_when_no_placement_exists():
    # A GPU of 4 memory slices whose 2-slice profile may only start at slice 0:
    # two of them fit the sums (4 of 4) but cannot both be placed.
    narrow = mig.Product("NARROW", 4, 4, {"2g.2gb": mig.Profile(2, 2, 2, (0,)), "1g.1gb": mig.Profile(1, 1, 4, (0, 1, 2, 3))})
    assert mig.place(narrow, {"2g.2gb": 2}) is None
    assert mig.place(narrow, {"2g.2gb": 1, "1g.1gb": 2}) == {"2g.2gb": [0], "1g.1gb": [2, 3]}
    mig.CATALOGUE["NARROW"] = narrow
    mig_aliases = mig.ALIASES
    try:
        mig.ALIASES = ((mig.re.compile("^NARROW$"), "NARROW"),)
        problems = mig.layout_problems("NARROW", {"2g.2gb": 2}, "host n")
        assert problems == [
            "host n: 2 x 2g.2gb fits the slice counts, but NARROW cannot place it: instances may only start at fixed slices (2g.2gb at slice 0). "
            "Fix: choose a layout nvidia-smi mig -lgipp can place, for example by swapping two small instances for one larger."
        ]
    finally:
        mig.ALIASES = mig_aliases
        del mig.CATALOGUE["NARROW"]


def test_no_one_slice_instance_takes_the_last_memory_slice():
    # Seven 1g instances fill slices 0-6; with a two-slice 1g they need slices 6 and 7.
    assert mig.place(mig.CATALOGUE["A100-80GB"], {"1g.10gb": 6, "1g.20gb": 1}) == {"1g.20gb": [6], "1g.10gb": [0, 1, 2, 3, 4, 5]}


HOSTS = {
    "gpu-a100-01": {"gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_sharing": "mig", "gpu_mig_config": "balanced"},
    "gpu-h100-01": {"gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_sharing": "mig", "gpu_mig_config": "all-3g"},
    "inf-01": {"gpu_product": "NVIDIA-L40S", "gpu_sharing": "time-slicing"},
}
LAYOUTS = {"balanced": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}, "all-3g": {"3g.40gb": 2}}


def test_the_gpu_group_is_checked_host_by_host():
    assert mig.mig_problems(HOSTS, LAYOUTS, "mixed") == []
    wrong = dict(HOSTS, **{"gpu-h100-01": dict(HOSTS["gpu-h100-01"], gpu_mig_config="balanced"), "gpu-a30-01": {"gpu_product": "NVIDIA A30", "gpu_sharing": "mig", "gpu_mig_config": "all-3g"}})
    problems = mig.mig_problems(wrong, LAYOUTS, "mixed")
    assert problems == ["host gpu-a30-01: gpu_mig_config all-3g: profile 3g.40gb does not exist on NVIDIA A30 (A30). Fix: use its profiles: 1g.6gb, 1g.6gb+me, 2g.12gb, 2g.12gb+me, 4g.24gb."]


def test_single_strategy_needs_one_profile_per_layout():
    problems = mig.mig_problems(HOSTS, LAYOUTS, "single")
    assert problems == [
        "host gpu-a100-01: gpu_mig_strategy is single, but gpu_mig_config balanced mixes 3g.40gb, 2g.20gb, 1g.10gb; with single every MIG device "
        "of a node must be the same profile. Fix: set gpu_mig_strategy: mixed, or give the host a one-profile layout."
    ]
    assert mig.mig_problems({"gpu-h100-01": HOSTS["gpu-h100-01"]}, LAYOUTS, "single") == []
    assert "gpu_mig_strategy: 'mixd' is not one of single, mixed" in mig.mig_problems({}, {}, "mixd")[0]


def test_mig_on_a_gpu_without_mig_is_refused_even_without_a_layout():
    problems = mig.mig_problems({"inf-01": {"gpu_product": "NVIDIA L4", "gpu_sharing": "mig"}}, {}, "mixed")
    assert problems == [
        "host inf-01: gpu_sharing is mig: NVIDIA L4 cannot do MIG (the hardware has no MIG support). "
        "Fix: set gpu_sharing: time-slicing to let pods share each GPU in turns, or exclusive to give each pod whole GPUs."
    ]
