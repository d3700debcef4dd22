"""mailmesh.imap.template_text renders a role's template to the same text as
ansible.builtin.template does, for what the roles' templates use (the task's variables,
lazily templated ones included, ansible_managed, blocks, loops, the trailing newline),
without the builtin's copy of every variable; a missing template is named."""

import copy

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar, trust_as_template

from ansible_collections.mailmesh.imap.plugins.lookup.template_text import LookupModule as TemplateText

UNIT = """{{ ansible_managed | comment }}
[Unit]
Description={{ description }}

[Service]
ExecStart={{ binary }}{% for arg in args %} {{ arg }}{% endfor %}

{% if extra | length > 0 %}
Environment=EXTRA={{ extra }}
{% endif %}
{% if not never %}
User={{ user }}
{% endif %}
"""


def _variables(tmp_path, **more):
    variables = {
        "ansible_search_path": [str(tmp_path)],
        "description": trust_as_template("Sidecar for {{ user }}"),
        "binary": "/usr/local/bin/envoy",
        "args": ["--concurrency", 2, trust_as_template("--base-id {{ base }}")],
        "base": 7,
        "extra": "",
        "never": False,
        "user": "envoy",
    }
    variables.update(more)
    return variables


def _render(cls, variables, *terms):
    """cls: our LookupModule, or None for ansible.builtin.template (through the plugin
    loader, which gives it its options)."""
    loader = DataLoader()
    templar = Templar(loader=loader, variables=variables)
    lookup = cls(loader=loader, templar=templar) if cls else lookup_loader.get("template", loader=loader, templar=templar)
    return lookup.run(list(terms), variables=variables)


@pytest.fixture
def template_dir(tmp_path):
    (tmp_path / "templates" / "etc").mkdir(parents=True)
    (tmp_path / "templates" / "etc" / "unit.j2").write_text(UNIT)
    (tmp_path / "templates" / "etc" / "bare.j2").write_text("no newline {{ user }}")
    return tmp_path


@pytest.mark.parametrize("more", [{}, {"extra": "1", "never": True}, {"ansible_managed": "Managed by the fleet's Ansible"}])
def test_the_same_text_as_ansible_builtin_template(template_dir, more):
    variables = _variables(template_dir, **more)
    ours = _render(TemplateText, variables, "etc/unit.j2", "etc/bare.j2")
    builtin = _render(None, copy.deepcopy(variables), "etc/unit.j2", "etc/bare.j2")
    assert ours == builtin
    unit, bare = ours
    assert unit.startswith("#\n# %s\n#\n[Unit]\n" % more.get("ansible_managed", "Ansible managed"))
    assert "Description=Sidecar for envoy\n" in unit and "ExecStart=/usr/local/bin/envoy --concurrency 2 --base-id 7\n" in unit
    assert unit.endswith("User=envoy\n") != bool(more.get("never"))
    assert ("Environment=EXTRA=1\n" in unit) == bool(more.get("extra"))
    assert bare == "no newline envoy"


def test_the_variables_are_not_changed(template_dir):
    variables = _variables(template_dir)
    before = dict(variables)
    _render(TemplateText, variables, "etc/unit.j2")
    assert variables == before and "ansible_managed" not in variables


def test_a_missing_template_is_named(template_dir):
    with pytest.raises(AnsibleError, match="the template file etc/gone.j2 could not be found"):
        _render(TemplateText, _variables(template_dir), "etc/gone.j2")


def test_ansible_managed_from_the_setting_as_the_builtin_makes_it(template_dir, monkeypatch):
    """DEFAULT_MANAGED_STR with its (deprecated) format fields and strftime fields."""
    from ansible import constants as C  # pylint: disable=import-outside-toplevel

    real = C.config.get_config_value

    def setting(name, *args, **kwargs):
        return "Managed on {host} as {uid} from {file}, %Y" if name == "DEFAULT_MANAGED_STR" else real(name, *args, **kwargs)

    monkeypatch.setattr(C.config, "get_config_value", setting)
    ours = _render(TemplateText, _variables(template_dir), "etc/unit.j2")
    assert ours == _render(None, _variables(template_dir), "etc/unit.j2")
    assert " from etc/unit.j2, 20" in ours[0].splitlines()[1]
