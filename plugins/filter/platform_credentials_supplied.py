"""Credentials given to a run rather than kept on the controller (platform_credentials_supplied).

Where a run cannot keep what it generates (an AWX or Automation Platform job runs in a container
that is thrown away afterwards), the credentials are given to it, for example by an AWX credential
(docs/awx.md): platform_credentials_supplied maps each credentials file's name (its name in
platform_credentials_dir without .yml; _ may stand for -, as AWX's variable names need) to that
file's content, as a mapping or as its YAML text. The platform_credentials action then reads them
from there, writes nothing and generates nothing. These filters let preflight judge that input,
and let the few readers of a credentials file other than the action read the given one instead.
No value ever appears in what they return for display: problems name files and entries only.
"""

from __future__ import annotations

import difflib

import yaml
from ansible.errors import AnsibleFilterError

# The credentials files the layers keep (roles/*/tasks: "{{ platform_credentials_dir }}/<name>.yml").
FILES = ("compute", "object-store", "observability", "serving", "tracking", "orchestration")
SOURCES = ("directory", "supplied")


def _files(supplied):
    """(name -> raw value, problems): the top level, keys normalised to the files' names."""
    if supplied in (None, ""):
        return {}, []
    if isinstance(supplied, str):
        try:
            supplied = yaml.safe_load(supplied)
        except yaml.YAMLError:
            return {}, ["platform_credentials_supplied: is not valid YAML; give a mapping of credentials file to its content"]
        supplied = supplied or {}
    if not isinstance(supplied, dict):
        return {}, [f"platform_credentials_supplied: must map credentials files ({', '.join(FILES)}) to their content"]
    files, problems = {}, []
    for key, value in supplied.items():
        name = str(key).replace("_", "-")
        if name not in FILES:
            close = difflib.get_close_matches(name, FILES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"platform_credentials_supplied.{key}: no such credentials file{hint}; the files are {', '.join(FILES)}")
        elif name in files:
            problems.append(f"platform_credentials_supplied.{key}: {name} is given twice (as {name} and {name.replace('-', '_')})")
        else:
            files[name] = value
    return files, problems


def _entries(name, value):
    """(entries of one file, problem or None). Never quotes the content: a YAML error's own
    message would show the line it failed on, which may hold a credential."""
    if value in (None, ""):
        return {}, None
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            return {}, f"platform_credentials_supplied.{name}: is not valid YAML{where}; give {name}.yml's content as it is"
        value = value or {}
    if not isinstance(value, dict):
        return {}, f"platform_credentials_supplied.{name}: must map entries to their fields, as {name}.yml does"
    for entry, fields in value.items():
        if not isinstance(fields, dict) or any(isinstance(v, (dict, list)) for v in fields.values()):
            return {}, f"platform_credentials_supplied.{name}: entry {entry} must map its fields to values, as in {name}.yml"
    return value, None


def supplied_file(supplied, name, strict=True):
    """The entries given for one credentials file ({} when none were). A malformed set fails, or
    with strict false gives {} (for the checks preflight runs beside its own judgement of it)."""
    files, problems = _files(supplied)
    if problems and not isinstance(supplied, dict):
        problem = problems[0]
    else:
        entries, problem = _entries(name, files.get(name))
    if problem and strict:
        raise AnsibleFilterError(problem)
    return {} if problem else entries


def supplied_problems(supplied, source, in_awx=False):
    """What is wrong with the credentials given to a run, for preflight: names only."""
    if source not in SOURCES:
        return [
            f"platform_credentials_source: {source!r} must be directory (credentials generated and kept in "
            "platform_credentials_dir) or supplied (given to the run in platform_credentials_supplied, docs/awx.md)."
        ]
    files, problems = _files(supplied)
    if source == "directory":
        if files or problems:
            return [
                "platform_credentials_supplied: set, but platform_credentials_source is directory, so the run would read "
                "and generate credentials in platform_credentials_dir instead. Fix: drop platform_credentials_source "
                "(credentials given select supplied), or drop platform_credentials_supplied."
            ]
        return []
    given = False
    for name, value in files.items():
        entries, problem = _entries(name, value)
        if problem:
            problems.append(problem)
        given = given or bool(entries)
    if not given and not problems:
        why = " (the default in an AWX job: its container is thrown away with whatever a run generates)" if in_awx else ""
        problems.append(
            f"platform_credentials_source: supplied{why}, but platform_credentials_supplied gives no credentials, so the "
            "first layer that needs one would stop. Fix: attach the ML platform credentials credential to the job template "
            "(docs/awx.md), or run from a controller that keeps them in platform_credentials_dir."
        )
    return problems


class FilterModule:
    def filters(self):
        return {"platform_credentials_file": supplied_file, "platform_credentials_supplied_problems": supplied_problems}
