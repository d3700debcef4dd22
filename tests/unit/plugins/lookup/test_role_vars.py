"""mailmesh.imap.role_vars renders another role's variables as an include of that role
from the calling task would: the include's vars over the role's vars/main.yml, over the
task's variables, over the role's defaults; the role's own templates are found. The envoy
role reads vault_cert's certificate arguments with it (its envoy_platform call): they
must be what vault_cert passes to its certificate module."""

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import lookup_loader
from ansible.template import Templar, trust_as_template

ROLES = pathlib.Path(__file__).resolve().parents[4] / "roles"


def _lookup(variables, *terms, **options):
    loader = DataLoader()
    templar = Templar(loader=loader, variables=variables)
    lookup = lookup_loader.get("mailmesh.imap.role_vars", loader=loader, templar=templar)
    return lookup.run(list(terms), variables=variables, **options)


def _role_yaml(role, kind):
    return yaml.safe_load((ROLES / role / kind / "main.yml").read_text(encoding="utf-8"))


def test_layers_as_an_include_stacks_them():
    """The include's vars win over the role's vars, which win over the task's variables
    (the inventory), which win over the role's defaults."""
    task = {"inventory_hostname": "edge1", "vault_cert_ttl": "72h", "vault_cert_service": "from-the-inventory",
            "__vault_cert_packages": ["from-the-inventory"]}
    ttl, service, packages, dir_, name = _lookup(
        task, "vault_cert_ttl", "vault_cert_service", "__vault_cert_packages", "vault_cert_dir",
        "vault_cert_common_name", role="vault_cert", with_vars={"vault_cert_service": "envoy"})
    assert ttl == "72h"  # the inventory's, over the default ""
    assert service == "envoy"  # the include's vars
    assert packages == _role_yaml("vault_cert", "vars")["__vault_cert_packages"]  # role vars over the inventory
    assert dir_ == "/etc/mailmesh/tls/envoy"  # a default, templated with the include's vars
    assert name == "edge1"  # a default, templated with the task's variables


def test_the_roles_templates_are_found_from_another_roles_task(tmp_path):
    """template_text inside the role's variables searches that role's templates, not
    the calling role's (ansible_search_path)."""
    text, = _lookup({"inventory_hostname": "edge1", "ansible_search_path": [str(tmp_path)]},
                    "__vault_cert_agent_timer_text", role="vault_cert", with_vars={"vault_cert_service": "envoy"})
    assert "[Timer]" in text and "OnUnitInactiveSec=15min" in text


def test_vault_cert_check_args_are_its_certificate_calls_arguments():
    """What the envoy role has envoy_platform look at is, entry for entry, the argument
    set vault_cert's certificate call renders on the same host (with the include's vars
    as tasks/certificate.yml passes them), with the agent's files by sha256."""
    envoy_vars = _role_yaml("envoy", "vars")["__envoy_cert_vars"]
    include = {name: trust_as_template(value) if isinstance(value, str) else value
               for name, value in envoy_vars.items()}
    task = {"inventory_hostname": "edge1", "__envoy_cert_service": "envoy", "envoy_group": "envoy",
            "envoy_cert_force": False, "__envoy_crl": False}
    loader = DataLoader()
    templar = Templar(loader=loader, variables=task)
    include = templar.template(include)
    check, arguments = _lookup(task, "__vault_cert_check_args", "__vault_cert_module_args",
                               role="vault_cert", with_vars=include)
    assert check == arguments
    assert arguments["common_name"] == "edge1" and arguments["group"] == "envoy"
    assert arguments["cert_path"] == "/etc/mailmesh/tls/envoy/cert.pem"
    assert arguments["units"] == [] and arguments["daemon_reload"] is False
    assert arguments["prerequisites"]["services"] == ["mailmesh-cert-renew.timer"]
    files = arguments["prerequisites"]["files"]
    assert "/etc/mailmesh/cert-renew.d/envoy.json" in [entry["path"] for entry in files]
    assert all("text" not in entry for entry in files)
    assert any(len(entry.get("sha256") or "") == 64 for entry in files)


@pytest.mark.parametrize("include", [
    {"vault_cert_crl_format": "envoy"},  # more to do than the call: the CRL
    {"vault_cert_agent_enabled": False},  # the agent's entry to remove
    {"vault_cert_prepare_first": True},  # no first call
    {"vault_cert_service": "not a name"},  # a wrong input: the role's check must run
])
def test_no_check_where_vault_cert_has_more_to_do(include):
    check, = _lookup({"inventory_hostname": "edge1"}, "__vault_cert_check_args", role="vault_cert",
                     with_vars=dict({"vault_cert_service": "envoy"}, **include))
    assert check is None


@pytest.mark.parametrize("terms, options, message", [
    (["__vault_cert_nothing"], {"role": "vault_cert"}, "role_vars: the role vault_cert has no variable __vault_cert_nothing"),
    (["vault_cert_ttl"], {"role": "no_such_role"}, "role_vars: role must be a role of mailmesh.imap, got 'no_such_role'"),
    (["vault_cert_ttl }}{{ x"], {"role": "vault_cert"}, "role_vars: 'vault_cert_ttl }}{{ x' is not a variable name"),
])
def test_a_wrong_name_is_named(terms, options, message):
    with pytest.raises(AnsibleError, match="^" + pytest.importorskip("re").escape(message)):
        _lookup({}, *terms, **options)


def test_extra_vars_win_over_the_includes_vars(monkeypatch):
    """-e vault_cert_force=true wins over the include's vault_cert_force, as it does over
    an include's vars (operations.md: a forced renewal from the command line)."""
    from ansible import context
    from ansible.module_utils.common.collections import ImmutableDict
    from ansible.utils.vars import load_extra_vars

    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(extra_vars=("vault_cert_force=true",)))
    monkeypatch.setattr(load_extra_vars, "extra_vars", None, raising=False)
    try:
        force, ttl = _lookup({"vault_cert_force": "true"}, "vault_cert_force", "vault_cert_ttl",
                             role="vault_cert", with_vars={"vault_cert_force": False, "vault_cert_ttl": "24h"})
    finally:
        monkeypatch.setattr(load_extra_vars, "extra_vars", None, raising=False)
    assert force == "true" and ttl == "24h"


def _a_role(tmp_path, monkeypatch):
    """A role of its own in place of the collection's: a variable that two others
    refer to, whose template gives a new value each time it runs."""
    role = tmp_path / "roles" / "counted"
    (role / "defaults").mkdir(parents=True)
    (role / "vars").mkdir()
    (role / "defaults" / "main.yml").write_text("counted_seed: \"{{ 999999999999 | random }}\"\n")
    (role / "vars" / "main.yml").write_text(
        "__counted_first: \"{{ counted_seed }}\"\n__counted_second: \"{{ counted_seed }}\"\n"
        "__counted_both: \"{{ [__counted_first, __counted_second, counted_seed] }}\"\n")
    monkeypatch.setattr(role_vars_plugin(), "_ROLES_DIR", str(tmp_path / "roles"))


def role_vars_plugin():
    import importlib

    return importlib.import_module(type(lookup_loader.get("mailmesh.imap.role_vars")).__module__)


def test_a_role_variable_is_templated_once_per_call(tmp_path, monkeypatch):
    """Each reference to a variable of the role's files gets the value templated the
    first time (vault_cert's certificate directory is referred to eleven times by the
    variables the envoy role reads): all three references, through two other variables,
    give the same number."""
    _a_role(tmp_path, monkeypatch)
    both, = _lookup({}, "__counted_both", role="counted")
    assert len(set(both)) == 1


def test_without_the_lazy_containers_each_reference_templates_again(tmp_path, monkeypatch):
    """Where ansible-core's internals are not as expected, the plain layers: the same
    variables, each reference templated again."""
    _a_role(tmp_path, monkeypatch)
    monkeypatch.setattr(role_vars_plugin(), "_AnsibleLazyTemplateMixin", None)
    both, = _lookup({}, "__counted_both", role="counted")
    assert len(set(both)) == 3
