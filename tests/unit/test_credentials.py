"""Unit tests of the credentials action (plugins/action/platform_credentials.py)."""

from __future__ import annotations

import base64
import os
import stat

import pytest
import yaml
from ansible.errors import AnsibleActionFail

import platform_credentials as creds

WANTED = {"mlflow": {"access_key": "mlflow", "secret_key": None}, "kserve": {"access_key": "kserve", "secret_key": None}}


def test_missing_values_are_generated_and_fixed_values_kept():
    entries, generated, missing = creds.resolve({}, WANTED)
    assert generated == ["kserve", "mlflow"] and missing == []
    assert entries["mlflow"]["access_key"] == "mlflow"
    assert len(entries["mlflow"]["secret_key"]) == 40 and entries["mlflow"]["secret_key"].isalnum()
    assert entries["mlflow"]["secret_key"] != entries["kserve"]["secret_key"]


def test_existing_values_are_returned_unchanged():
    existing, _, _ = creds.resolve({}, WANTED)
    again, generated, _ = creds.resolve(existing, WANTED)
    assert again == existing and generated == []


def test_rotation_regenerates_only_the_named_entry():
    existing, _, _ = creds.resolve({}, WANTED)
    rotated, generated, _ = creds.resolve(existing, WANTED, rotate=["kserve"])
    assert generated == ["kserve"]
    assert rotated["mlflow"] == existing["mlflow"]
    assert rotated["kserve"]["secret_key"] != existing["kserve"]["secret_key"]


def test_a_key_of_random_bytes_is_generated_base64_encoded_and_then_kept():
    wanted = {"kms": {"key": None}}
    entries, generated, _ = creds.resolve({}, wanted, key_bytes=32)
    assert generated == ["kms"]
    assert len(base64.b64decode(entries["kms"]["key"], validate=True)) == 32
    other, _, _ = creds.resolve({}, wanted, key_bytes=32)
    assert other["kms"]["key"] != entries["kms"]["key"]
    again, generated, _ = creds.resolve(entries, wanted, key_bytes=32)
    assert again == entries and generated == []


def test_without_generation_missing_fields_are_named():
    _, _, missing = creds.resolve({"mlflow": {"secret_key": "x" * 40}}, WANTED, generate_missing=False)
    assert missing == ["kserve.secret_key"]


def test_the_file_is_private_and_round_trips(tmp_path):
    path = tmp_path / "credentials" / "object-store.yml"
    entries, _, _ = creds.resolve({}, WANTED)
    creds.write(str(path), entries)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert creds.load(str(path)) == entries
    assert path.read_text().startswith(creds.HEADER)
    assert yaml.safe_load(path.read_text()) == entries


def test_a_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "object-store.yml"
    path.write_text("mlflow: {secret_key: x}\n")
    path.chmod(0o644)
    with pytest.raises(AnsibleActionFail, match="chmod 600"):
        creds.load(str(path))


def test_a_bcrypt_hash_is_kept_while_it_matches_and_made_again_after_rotation():
    wanted = {"ui": {"user": "admin", "password": None}}
    entries, _, _ = creds.resolve({}, wanted)
    entries, made = creds.with_bcrypt(entries, {}, ["ui"])
    first = entries["ui"]["password_bcrypt"]
    assert made == ["ui"] and first.startswith("$2b$") and entries["ui"]["password"] not in first
    assert creds.bcrypt.checkpw(entries["ui"]["password"].encode(), first.encode())
    stored = {"ui": dict(entries["ui"])}
    # A re-run: the password and its hash come back as stored, nothing is generated.
    again, generated, _ = creds.resolve(stored, wanted)
    again, made = creds.with_bcrypt(again, stored, ["ui"])
    assert generated == [] and made == [] and again["ui"]["password_bcrypt"] == first
    # A rotated password gets a hash of its own.
    rotated, generated, _ = creds.resolve(stored, wanted, rotate=["ui"])
    rotated, made = creds.with_bcrypt(rotated, stored, ["ui"])
    assert generated == made == ["ui"] and rotated["ui"]["password_bcrypt"] != first
    assert creds.bcrypt.checkpw(rotated["ui"]["password"].encode(), rotated["ui"]["password_bcrypt"].encode())
    # A hash that does not match (edited by hand) is replaced.
    _, made = creds.with_bcrypt({"ui": dict(stored["ui"], password="changed-by-hand")}, stored, ["ui"])
    assert made == ["ui"]


def test_a_new_hash_records_when_the_password_changed():
    import datetime

    first_time = datetime.datetime(2026, 12, 1, 8, 30, tzinfo=datetime.timezone.utc)
    wanted = {"ui": {"user": "admin", "password": None}}
    entries, _, _ = creds.resolve({}, wanted)
    entries, _ = creds.with_bcrypt(entries, {}, ["ui"], now=first_time)
    assert entries["ui"]["password_changed"] == "2026-12-01T08:30:00Z"
    stored = {"ui": dict(entries["ui"])}
    again, made = creds.with_bcrypt(creds.resolve(stored, wanted)[0], stored, ["ui"], now=first_time + datetime.timedelta(days=1))
    assert made == [] and again["ui"]["password_changed"] == "2026-12-01T08:30:00Z"
    rotated, made = creds.with_bcrypt(creds.resolve(stored, wanted, rotate=["ui"])[0], stored, ["ui"], now=first_time + datetime.timedelta(days=2))
    assert made == ["ui"] and rotated["ui"]["password_changed"] == "2026-12-03T08:30:00Z"


def test_entries_not_asked_for_are_named_as_kept():
    existing = {"root": {"access_key": "platform-root", "secret_key": "r"}, "team-old": {"access_key": "team-old", "secret_key": "o"},
                "mlflow": {"access_key": "mlflow", "secret_key": "m"}}
    assert creds.undeclared(existing, {"root": {}, "mlflow": {}}) == ["team-old"]
    assert creds.undeclared(existing, existing) == []


def test_an_entry_no_longer_declared_is_revoked_and_declared_again_gets_new_values():
    import datetime

    when = datetime.datetime(2026, 12, 5, 9, 0, tzinfo=datetime.timezone.utc)
    stored, _, _ = creds.resolve({}, WANTED)
    stored = {**stored, "replication": {"access_key": "remote", "secret_key": "theirs"}}
    old_key = stored["kserve"]["secret_key"]
    # kserve leaves the declaration: its values leave the file, a marker with the time stays;
    # the entry another task asks for (replication) is not this task's to revoke.
    marked, newly = creds.revoke(stored, {"mlflow": {}}, others=["replication"], now=when)
    assert newly == ["kserve"]
    assert marked["kserve"] == {"revoked": "2026-12-05T09:00:00Z"}
    assert marked["mlflow"] == stored["mlflow"] and marked["replication"] == stored["replication"]
    assert old_key not in yaml.safe_dump(marked)
    # Later runs keep the marker (and its time) and name it among the entries not asked for,
    # so the layer goes on revoking the user until the entry is declared again.
    again, newly = creds.revoke(marked, {"mlflow": {}}, others=["replication"], now=when + datetime.timedelta(days=1))
    assert newly == [] and again == marked
    assert creds.undeclared(again, {"mlflow": {}, "replication": {}}) == ["kserve"]
    # Declared again: new values, never the old ones, and no marker left.
    back, generated, _ = creds.resolve(again, WANTED)
    assert generated == ["kserve"] and set(back["kserve"]) == {"access_key", "secret_key"}
    assert back["kserve"]["secret_key"] != old_key and len(back["kserve"]["secret_key"]) == 40
    assert creds.is_revoked(again["kserve"]) and not creds.is_revoked(back["kserve"])


def test_a_revoked_login_declared_again_gets_a_new_password_and_hash():
    wanted = {"team-a": {"user": "team-a", "password": None}}
    entries, _, _ = creds.resolve({}, wanted)
    entries, _ = creds.with_bcrypt(entries, {}, ["team-a"])
    marked, _ = creds.revoke(entries, {})
    back, generated, _ = creds.resolve(marked, wanted)
    back, made = creds.with_bcrypt(back, marked, ["team-a"])
    assert generated == made == ["team-a"]
    assert back["team-a"]["password"] != entries["team-a"]["password"]
    assert back["team-a"]["password_bcrypt"] != entries["team-a"]["password_bcrypt"]


def _run_action(path, entries, check_mode=False, **args):
    """The action as a task runs it (the task and Ansible's plumbing stood in for)."""
    from unittest import mock

    task = mock.MagicMock(args={"path": str(path), "entries": entries, **args}, check_mode=check_mode, async_val=0)
    plumbing = [mock.MagicMock() for _ in range(5)]
    return creds.ActionModule(task, *plumbing).run(task_vars={})


def test_the_task_revokes_what_it_no_longer_asks_for_and_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "object-store.yml"
    both = {"team-a": {"access_key": "team-a", "secret_key": None}, "team-b": {"access_key": "team-b", "secret_key": None}}
    first = _run_action(path, both, revoke=True, others=["replication"])
    assert first["changed"] and first["revoked"] == [] and first["kept"] == []
    old = first["credentials"]["team-b"]["secret_key"]
    text = path.read_text()
    # --check: the run says what it would revoke, and the file stays as it was.
    checked = _run_action(path, {"team-a": both["team-a"]}, check_mode=True, revoke=True, others=["replication"])
    assert checked["changed"] and checked["revoked_now"] == ["team-b"] and path.read_text() == text
    revoked = _run_action(path, {"team-a": both["team-a"]}, revoke=True, others=["replication"])
    assert revoked["changed"] and revoked["revoked_now"] == ["team-b"] and revoked["kept"] == ["team-b"]
    assert "team-b" not in revoked["credentials"] and old not in path.read_text()
    # The next run changes nothing and still names it, so the layer revokes it again.
    again = _run_action(path, {"team-a": both["team-a"]}, revoke=True, others=["replication"])
    assert not again["changed"] and again["revoked_now"] == [] and again["revoked"] == again["kept"] == ["team-b"]
    # A task without revoke (another layer reading the same file) leaves entries it does not ask for alone.
    reader = _run_action(path, {"team-a": both["team-a"]})
    assert not reader["changed"] and set(creds.load(str(path))["team-b"]) == {"revoked"}
    back = _run_action(path, both, revoke=True, others=["replication"])
    assert back["generated"] == ["team-b"] and back["revoked"] == [] and back["credentials"]["team-b"]["secret_key"] != old


# ---- credentials given to the run (platform_credentials_source: supplied; docs/awx.md)

import platform_credentials_supplied as given  # noqa: E402


def test_given_credentials_are_returned_and_nothing_is_generated_or_written(tmp_path):
    stored = {"mlflow": {"access_key": "mlflow", "secret_key": "m" * 40}, "team-old": {"access_key": "team-old", "secret_key": "o" * 40}}
    entries, kept = creds.from_supplied("object-store", stored, {"mlflow": WANTED["mlflow"]})
    assert entries == {"mlflow": stored["mlflow"]} and kept == ["team-old"]
    assert list(tmp_path.iterdir()) == []


def test_a_value_the_run_would_generate_fails_naming_it():
    with pytest.raises(AnsibleActionFail) as failure:
        creds.from_supplied("object-store", {"mlflow": {"secret_key": "m" * 40}}, WANTED)
    message = str(failure.value)
    assert "object-store: the credentials given to this run (platform_credentials_supplied) lack kserve.secret_key" in message
    assert "Nothing was generated or written" in message and "load object-store.yml into the credential" in message
    assert "m" * 40 not in message


def test_a_rotation_with_given_credentials_fails_before_generating():
    stored, _, _ = creds.resolve({}, WANTED)
    with pytest.raises(AnsibleActionFail, match="object-store: rotating kserve generates new values"):
        creds.from_supplied("object-store", stored, WANTED, rotate=["kserve", "not-wanted-here"])


def test_given_bcrypt_hashes_are_kept_and_a_stale_or_missing_one_is_named():
    wanted = {"ui": {"user": "admin", "password": None}, "argocd": {"user": "admin", "password": None}}
    stored, _, _ = creds.resolve({}, wanted)
    # Cheap hashes (4 rounds): what is checked is that the given hash is kept, not its cost.
    for entry in stored.values():
        entry.update(password_bcrypt=creds.bcrypt.hashpw(entry["password"].encode(), creds.bcrypt.gensalt(rounds=4)).decode(),
                     password_changed="2026-12-01T08:30:00Z")
    entries, _ = creds.from_supplied("orchestration", stored, wanted, hashed=["ui", "argocd"])
    assert entries == stored
    stale = {"ui": dict(stored["ui"], password="changed-by-hand"), "argocd": {k: v for k, v in stored["argocd"].items() if k != "password_changed"}}
    with pytest.raises(AnsibleActionFail, match=r"lack ui\.password_bcrypt, argocd\.password_changed"):
        creds.from_supplied("orchestration", stale, wanted, hashed=["ui", "argocd"])


def test_given_files_are_read_as_mappings_or_as_their_yaml_text():
    text = "mlflow:\n  access_key: mlflow\n  secret_key: abc\n"
    assert given.supplied_file({"object_store": text}, "object-store") == {"mlflow": {"access_key": "mlflow", "secret_key": "abc"}}
    assert given.supplied_file({"object-store": yaml.safe_load(text)}, "object-store") == yaml.safe_load(text)
    assert given.supplied_file({"serving": ""}, "object-store") == {}
    assert given.supplied_file(yaml.safe_dump({"serving": text}), "serving") == yaml.safe_load(text)
    # A malformed file fails where it is read, and only there; preflight names it (and the typo) first.
    broken = {"serving": "default: {token: [unclosed", "obervability": text}
    assert given.supplied_file(broken, "object-store") == {}
    with pytest.raises(given.AnsibleFilterError, match=r"platform_credentials_supplied\.serving: is not valid YAML \(line 1\)"):
        given.supplied_file(broken, "serving")
    assert given.supplied_file(broken, "serving", strict=False) == {}


def test_preflight_names_what_is_wrong_with_given_credentials_and_never_a_value():
    secret = "Sup3rSecretValue0123456789abcdefghijklmn"
    problems = given.supplied_problems(
        {"object_store": f"mlflow: {{secret_key: {secret}", "obervability": "grafana: {password: x}", "serving": f"- {secret}",
         "tracking": {"admin": secret}}, "supplied")
    text = "\n".join(problems)
    assert "platform_credentials_supplied.obervability: no such credentials file (did you mean 'observability'?)" in text
    assert "platform_credentials_supplied.object-store: is not valid YAML (line 1)" in text
    assert "platform_credentials_supplied.serving: must map entries to their fields" in text
    assert "platform_credentials_supplied.tracking: entry admin must map its fields to values" in text
    assert secret not in text and len(problems) == 4
    assert given.supplied_problems({"serving": {"default": {"token": secret}}}, "supplied") == []


def test_preflight_refuses_a_run_that_would_generate_where_nothing_is_kept():
    [awx] = given.supplied_problems({}, "supplied", True)
    assert "the default in an AWX job" in awx and "attach the ML platform credentials credential" in awx
    [empty] = given.supplied_problems({"serving": "", "tracking": ""}, "supplied")
    assert "gives no credentials" in empty
    [ignored] = given.supplied_problems({"serving": {"default": {"token": "t"}}}, "directory")
    assert "platform_credentials_source is directory" in ignored
    [typo] = given.supplied_problems({}, "vault")
    assert "platform_credentials_source: 'vault' must be directory" in typo
    assert given.supplied_problems({}, "directory") == []


def test_the_given_files_are_the_files_the_layers_keep():
    import re

    from conftest import ROOT

    kept = set()
    for path in ROOT.glob("roles/*/*/*.yml"):
        kept |= set(re.findall(r"platform_credentials_dir \}\}/([a-z-]+)\.yml", path.read_text()))
        kept |= set(re.findall(r"platform_credentials_dir ~ '/([a-z-]+)\.yml'", path.read_text()))
    assert kept == set(given.FILES)
