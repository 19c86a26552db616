"""The ansible.builtin.template lookup without its deep copy of every variable in scope.

The roles render each layer's values files and manifests from Jinja templates with a lookup,
about forty lookups in a render of every layer. ansible.builtin.template deep-copies all the
variables of the task (every role default, the inventory's groups and hostvars, the facts the
run has set) for each template, only to add a few of its own on top: in a gitops render of
production, a quarter of the CPU that the task processes spend. This lookup renders the same
files with the same variables: those given as template_vars in a map of their own in front of
the task's, which are read, never copied or changed. Jinja's includes and imports are searched
for as the builtin lookup searches them. It adds none of the builtin's file metadata
(template_path, template_mtime, ansible_managed...): no template here reads them, and a
rendered manifest that held a date or a path would change on every run and on every controller.
"""

from __future__ import annotations

import os
from collections import ChainMap

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template

DOCUMENTATION = r"""
name: platform_template
author: ml-platform maintainers
short_description: Render template files with the task's variables, without copying them
description:
  - Renders each Jinja template file found in the role's C(templates) folder (or the play's), as
    M(ansible.builtin.template) and the builtin template lookup do, with every variable in scope.
  - The builtin lookup deep-copies every variable in scope before adding those given as
    O(template_vars); this one puts those in front of the task's variables and copies nothing.
  - Unlike the builtin lookup, it defines none of the template file's metadata (C(template_path),
    C(template_mtime), C(ansible_managed) and the rest), since a manifest holding one would change with
    every run or controller.
  - The result is a string, as with the builtin lookup's default options.
options:
  _terms:
    description: The template files to render, looked up as the builtin template lookup looks them up.
    required: true
    type: list
    elements: str
  template_vars:
    description: Variables the templates see in front of every other.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: A layer's values, rendered from the role's templates/values.yml.j2
  ansible.builtin.set_fact:
    layer_values: "{{ lookup('mlplatform.baremetal.platform_template', 'values.yml.j2') | from_yaml }}"

- name: One template rendered for one item, with a variable of its own
  ansible.builtin.debug:
    msg: "{{ lookup('mlplatform.baremetal.platform_template', 'job.yml.j2', template_vars={'job': item}) }}"
"""

RETURN = r"""
_raw:
  description: Each template file's rendered text.
  type: list
  elements: str
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        self.set_options(var_options=variables, direct=kwargs)
        given = self.get_option("template_vars")
        rendered = []
        for term in terms:
            path = self.find_file_in_search_path(variables, "templates", term)
            if not path:
                raise AnsibleError(f"the template file {term} could not be found for the lookup")
            # Jinja's includes and imports: the template's folder, then each search path's
            # templates/ folder and the path itself, as ansible.builtin.template's lookup has them.
            searchpath = [os.path.dirname(path)]
            for directory in variables.get("ansible_search_path", []):
                searchpath += [os.path.join(directory, "templates"), directory]
            templar = self._templar.copy_with_new_env(available_variables=ChainMap(dict(given), variables), searchpath=searchpath)
            text = trust_as_template(self._loader.get_text_file_contents(path))
            rendered.append(templar.template(text, escape_backslashes=False))
        return rendered
