#!/usr/bin/python
"""Documentation of the platform_credentials action (plugins/action/platform_credentials.py),
which runs entirely on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_credentials
short_description: Generate and keep the platform's credentials in a 0600 file on the controller
description:
  - Reads the YAML file at I(path), generates each wanted field it lacks (40 letters and digits from
    Python's C(secrets)), writes the file back only when something was generated (directory 0700,
    file 0600), and returns the entries under C(credentials). Entries already in the file and not
    asked for are kept.
  - Refuses a file that group or others can read. Runs in the controller process (an action
    plugin); in check mode writes nothing. Always use it with C(no_log=true).
  - With the platform-wide variable C(platform_credentials_source) C(supplied) (the default in an AWX job,
    or when C(platform_credentials_supplied) is set) the entries come from C(platform_credentials_supplied),
    the file's name without C(.yml) mapped to its content; nothing is read from or written to the disk,
    nothing is generated, and a field the task would generate (a missing one, a rotated entry, a bcrypt
    hash that does not match) fails the task, named. See docs/awx.md.
options:
  path:
    description: The credentials file.
    type: path
    required: true
  entries:
    description:
      - Entry name to its fields. A field whose value is null is a generated secret; any other
        value is stored as given (for example an access key that is the service's name).
    type: dict
    required: true
  rotate:
    description: Entries whose generated fields are generated again.
    type: list
    elements: str
    default: []
  generate:
    description: Generate missing fields; when false a missing field fails the task and is named.
    type: bool
    default: true
  length:
    description: Length of generated values.
    type: int
    default: 40
  bytes:
    description:
      - When set, generated values are this many random bytes from Python's C(secrets), base64-encoded
        (a key, such as the 32-byte key of MinIO's KMS), instead of I(length) letters and digits.
    type: int
  bcrypt:
    description:
      - Entries that also keep C(password_bcrypt), a bcrypt hash of their C(password) for an htpasswd
        file, and C(password_changed), when that hash was made (UTC, RFC 3339). The hash is kept while
        it matches the password and made again when it does not (after a rotation), so what is built
        from it stays the same between runs.
    type: list
    elements: str
    default: []
  revoke:
    description:
      - The task asks for every entry of the file that should be live (I(others) aside). An entry the
        file holds and the task no longer asks for is revoked - its values leave the file and a marker
        stays in their place, the entry holding only C(revoked) and the UTC time - and is named in
        C(kept) on every later run, so the layer goes on revoking its user; declared again, it gets
        new values, never its old ones.
    type: bool
    default: false
  others:
    description: With I(revoke), entries of the file that another task asks for, never revoked by this one.
    type: list
    elements: str
    default: []
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Credentials of the object store's service users
  platform_credentials:
    path: "{{ platform_credentials_dir }}/object-store.yml"
    entries:
      mlflow: {access_key: mlflow, secret_key: null}
  no_log: true
  register: object_store_credentials
"""

RETURN = r"""
credentials:
  description: Entry name to its fields, as wanted.
  returned: always
  type: dict
generated:
  description: Entries generated or completed by this run.
  returned: always
  type: list
kept:
  description: Names of the entries the file holds and this task did not ask for (kept in the file; their values are not returned).
  returned: always
  type: list
revoked:
  description: Names of the entries the file holds as revocation markers after this run.
  returned: always
  type: list
revoked_now:
  description: Names of the entries this run revoked (their values removed from the file).
  returned: always
  type: list
"""
