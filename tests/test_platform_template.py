"""The roles' template lookup (plugins/lookup/platform_template.py) renders what
ansible.builtin.template's lookup renders, without copying the task's variables: the same text
for a template that includes another, reads nested variables and the inventory, is given
template_vars (in front of the play's) and calls the lookup again from inside; several
templates in one query, in order; a missing file named."""

from __future__ import annotations

import textwrap

import yaml

from conftest import ROOT, run, tool

TEMPLATES = {
    "page.j2": "{% include 'part.j2' %}\nname={{ who }} inner={{ settings.inner.value }} hosts={{ groups['all'] | length }}\n"
               "{{ lookup(plugin, 'inner.j2', template_vars={'who': 'nested'}) }}\n",
    "part.j2": "part of {{ who }}",
    "inner.j2": "inner {{ who }} {{ settings.inner.value }}",
}
EXPECTED_PAGE = "part of givenname=given inner=original hosts=1\ninner nested original\n"  # trim_blocks: no newline after a block tag

PLAY = textwrap.dedent("""\
    - name: The platform's template lookup against the builtin one
      hosts: localhost
      gather_facts: false
      vars:
        who: play
        settings: {inner: {value: original}}
        builtin: >-
          {{ lookup('ansible.builtin.template', 'page.j2', template_vars={'who': 'given', 'plugin': 'ansible.builtin.template'}) }}
        ours: >-
          {{ lookup('mlplatform.baremetal.platform_template', 'page.j2', template_vars={'who': 'given', 'plugin': 'mlplatform.baremetal.platform_template'}) }}
      tasks:
        - name: The same page, and the one expected
          ansible.builtin.assert:
            that: [ours == builtin, ours == expected]
            fail_msg: "{{ {'ours': ours, 'builtin': builtin, 'expected': expected} | to_json }}"

        - name: Several templates in one query, in order
          vars:
            both: "{{ query('mlplatform.baremetal.platform_template', 'part.j2', 'inner.j2') }}"
          ansible.builtin.assert:
            that: both == ['part of play', 'inner play original']
            fail_msg: "{{ both | to_json }}"

        - name: A missing template
          ansible.builtin.debug:
            msg: "{{ lookup('mlplatform.baremetal.platform_template', 'missing.j2') }}"
          register: missing
          ignore_errors: true

        - name: The missing template is named
          ansible.builtin.assert:
            that: [missing is failed, "'missing.j2 could not be found' in missing.msg"]
            fail_msg: "{{ missing | to_json }}"
    """)


def test_the_platform_template_lookup_renders_what_the_builtin_one_does(tmp_path):
    (tmp_path / "templates").mkdir()
    for name, text in TEMPLATES.items():
        (tmp_path / "templates" / name).write_text(text)
    play = yaml.safe_load(PLAY)
    play[0]["vars"]["expected"] = EXPECTED_PAGE
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False, width=1000))
    result = run([tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout and "ignored=1" in result.stdout, result.stdout


def test_the_roles_render_with_the_platform_template_lookup():
    """ansible.builtin.template's lookup deep-copies every variable in scope per template (a
    quarter of a render's task CPU): a role that uses it brings that back."""
    used = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "roles").rglob("*"))
        if path.is_file() and path.suffix in (".yml", ".j2")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "ansible.builtin.template'" in line or "lookup('template'" in line or "query('template'" in line
    ]
    assert not used, "use lookup('mlplatform.baremetal.platform_template', ...) instead: " + ", ".join(used)
