"""Unit tests of the module that keeps the controller's state out of the inventory
(plugins/modules/platform_state.py)."""

from __future__ import annotations

import platform_state as state


def test_only_items_present_and_not_yet_moved_are_planned(tmp_path):
    inventory, target = tmp_path / "inventories" / "prod", tmp_path / ".state" / "prod"
    (inventory / "credentials").mkdir(parents=True)
    (inventory / "artifacts").mkdir()
    (inventory / "artifacts" / "admin.conf").write_text("x")
    legacy = {"credentials": str(target / "credentials"), "artifacts/admin.conf": "admin.conf", "artifacts/cache": "cache"}
    moves, problems = state.plan(str(target), str(inventory), legacy)
    assert problems == []
    assert moves == [(f"{inventory}/artifacts/admin.conf", f"{target}/admin.conf"), (f"{inventory}/credentials", f"{target}/credentials")]
    state.apply(str(target), moves, str(inventory))
    assert sorted(p.name for p in inventory.iterdir()) == []  # artifacts/ was left empty, and went
    assert (target / "admin.conf").read_text() == "x" and (target / "credentials").is_dir()
    assert target.stat().st_mode & 0o777 == 0o700
    assert state.plan(str(target), str(inventory), legacy) == ([], [])


def test_an_item_in_both_places_is_a_problem_and_nothing_moves(tmp_path):
    inventory, target = tmp_path / "inv", tmp_path / "state"
    (inventory / "credentials").mkdir(parents=True)
    (target / "credentials").mkdir(parents=True)
    moves, problems = state.plan(str(target), str(inventory), {"credentials": "credentials"})
    assert moves == [] and problems == [f"{inventory}/credentials and {target}/credentials both exist: keep the one your running "
                                        f"cluster uses in {target}/credentials and delete {inventory}/credentials"]


def test_an_item_the_operator_keeps_where_it_was_stays(tmp_path):
    inventory = tmp_path / "inv"
    (inventory / "artifacts").mkdir(parents=True)
    (inventory / "artifacts" / "admin.conf").write_text("x")
    assert state.plan(str(tmp_path / "state"), str(inventory), {"artifacts/admin.conf": str(inventory / "artifacts" / "admin.conf")}) == ([], [])


def test_a_state_directory_inside_the_inventory_is_refused(tmp_path):
    moves, problems = state.plan(str(tmp_path / "inv" / "state"), str(tmp_path / "inv"), {})
    assert moves == [] and "is inside the inventory" in problems[0]
