"""The check every binary the tests drive passes before it runs (tests/binaries.py), fed a file
that is not the pinned one: refused, and refused again after a file it passed is rewritten."""

from __future__ import annotations

import hashlib

import pytest

import binaries


def test_a_binary_other_than_the_pinned_one_is_refused_even_after_it_passed(tmp_path, monkeypatch):
    tool = tmp_path / "tool"
    tool.write_bytes(b"the pinned build\n")
    monkeypatch.setitem(binaries.SHA256, "tool", hashlib.sha256(b"the pinned build\n").hexdigest())
    assert binaries._verified(tool, "tool") == tool
    tool.write_bytes(b"another build\n")
    with pytest.raises(AssertionError, match="sha256 is not the pinned"):
        binaries._verified(tool, "tool")
    other = tmp_path / "other"
    other.write_bytes(b"something else\n")
    with pytest.raises(AssertionError, match="refusing to run it"):
        binaries._verified(other, "tool")
