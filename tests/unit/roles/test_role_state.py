"""roles/envoy, dovecot, nginx_mail, vault_server and vault_cert: every path the tasks that run only after a difference
write on the host is in the role's __<role>_state_files, the list host_state compares
(the envoy role: from what envoy_platform and envoy_ready observe).

A path left out would not be compared: a change to it alone would not run the tasks
that put it back. The comparison after the tasks catches wrong expected values, not missing paths; this test catches those.
"""

import pathlib
import re

import yaml

import pytest

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
# Per role: the task files main.yml runs only where the comparison finds a difference.
CONVERGE = {
    "envoy": ["install.yml", "install_wheel.yml", "install_binary.yml", "copy_binary.yml", "configure.yml",
              "service.yml"],
    "dovecot": ["accounts.yml", "configure.yml", "service.yml"],
    "nginx_mail": ["configure.yml", "service.yml"],
    "vault_server": ["install.yml", "install_wheel.yml", "install_archive.yml", "configure.yml", "service.yml"],
    "vault_cert": ["prepare.yml"],
}
# The variables that hold the list host_state compares (default: __<role>_state_files),
# and the data a filter turns into it (envoy: __envoy_kept_files | host_state_files, made
# of the binary's and the configuration's lists).
STATE_VARIABLES = {
    "vault_cert": ["__vault_cert_kept_files"],
    "envoy": ["__envoy_state_files", "__envoy_kept_files", "__envoy_binary_files", "__envoy_config_files"],
    "dovecot": ["__dovecot_state_files", "__dovecot_kept_files", "__dovecot_gone_files"],
    "nginx_mail": ["__nginx_mail_state_files", "__nginx_mail_unit_state_files"],
}
WRITERS = ("ansible.builtin.copy", "ansible.builtin.template", "ansible.builtin.file", "mailmesh.imap.host_files",
           "mailmesh.imap.gunzip_copy")


def _tasks(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _named_lists(role, expression):
    """(variable, how many paths it writes: its entries if a literal list, else 1) for each
    __variable in expression; a compared variable made of lists is followed one level."""
    variables_file = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text(encoding="utf-8"))
    for variable in re.findall(r"\b(__[A-Za-z0-9_]+)", expression):
        value = variables_file.get(variable)
        if isinstance(value, str) and variable not in STATE_VARIABLES.get(role, []):
            yield variable, 1
        elif isinstance(value, str):
            for inner in re.findall(r"\b(__[A-Za-z0-9_]+)", value):
                inner_value = variables_file.get(inner)
                yield inner, len(inner_value) if isinstance(inner_value, list) else 1
        else:
            yield variable, len(value) if isinstance(value, list) else 1


def _written_paths(role):
    """(file, task name, path expression) of every host-side write in the converge files."""
    for name in CONVERGE[role]:
        for task in _tasks(yaml.safe_load((ROLES / role / "tasks" / name).read_text(encoding="utf-8"))):
            module = next((m for m in WRITERS if m in task), None)
            if module is None or task.get("delegate_to") == "localhost":
                continue
            args = task[module]
            if module == "mailmesh.imap.host_files":
                # One call writes lists of paths: each list it names, one level into
                # vars/main.yml (a variable made of lists: each of those lists; a literal
                # list: one write per entry).
                for variable, entries in _named_lists(role, args["files"]):
                    for _entry in range(entries):
                        yield name, task["name"], "{{ %s }}" % variable
                continue
            if args.get("state") == "absent":
                continue
            key = "dest" if "dest" in args else "path"
            expression = args[key]
            if "item" in expression and isinstance(task["loop"], str):
                # A loop over a variable (the list of files): its variables and the
                # destination's others must all be in the list compared.
                yield name, task["name"], re.sub(r"\{\{\s*item\b[^}]*\}\}", "", expression) + task["loop"]
            elif "item" in expression:
                loop = task["loop"]
                assert isinstance(loop, list), (name, task["name"], loop)
                attribute = re.search(r"item\.(\w+)", expression)
                for item in loop:
                    yield name, task["name"], item[attribute.group(1) if attribute else key] if isinstance(item, dict) else item
            else:
                yield name, task["name"], expression


def _variables(expression):
    return re.findall(r"\{\{\s*\(?\s*([A-Za-z_][A-Za-z0-9_]*)", expression)


@pytest.mark.parametrize("role,at_least", [("envoy", 10), ("dovecot", 5), ("nginx_mail", 4), ("vault_server", 10),
                                           ("vault_cert", 5)])
def test_the_converge_files_write_paths_at_all(role, at_least):
    paths = list(_written_paths(role))
    assert len(paths) >= at_least, paths


@pytest.mark.parametrize("role", sorted(CONVERGE))
def test_every_written_path_is_compared(role):
    variables_file = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text(encoding="utf-8"))
    names = STATE_VARIABLES.get(role, ["__%s_state_files" % role])
    # A loop over one of the compared lists itself writes what is compared.
    state = " ".join(names + [str(variables_file[name]) for name in names])
    missing = []
    for name, task, expression in _written_paths(role):
        variables = _variables(str(expression))
        assert variables, (name, task, expression)
        if not all(re.search(r"\b%s\b" % re.escape(v), state) for v in variables):
            missing.append((name, task, expression))
    assert not missing, missing


def _blankless(expression):
    return re.sub(r"\s+", "", str(expression))


def _with_item(expression, item):
    """The expression with ``{{ item }}`` / ``{{ item.key }}`` replaced from a literal loop item."""
    def value(match):
        return str(item[match.group(1)] if match.group(1) else item)
    return re.sub(r"\{\{\s*item(?:\.(\w+))?\s*\}\}", value, str(expression))


def test_envoy_compares_the_list_it_keeps():
    variables_file = yaml.safe_load((ROLES / "envoy" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert _blankless(variables_file["__envoy_state_files"]) == "{{__envoy_kept_files|mailmesh.imap.host_state_files}}"


def test_vault_cert_writes_and_compares_one_list():
    prepare = yaml.safe_load((ROLES / "vault_cert" / "tasks" / "prepare.yml").read_text(encoding="utf-8"))
    written = [task["mailmesh.imap.host_files"]["files"] for task in _tasks(prepare) if "mailmesh.imap.host_files" in task]
    assert [_blankless(files) for files in written] == ["{{__vault_cert_kept_files}}"]
    cert = yaml.safe_load((ROLES / "vault_cert" / "tasks" / "cert.yml").read_text(encoding="utf-8"))
    # The certificate call's arguments are one variable, which the envoy role reads too.
    assert [_blankless(task["args"]) for task in _tasks(cert) if "mailmesh.imap.vault_pki_cert" in task] == [
        "{{__vault_cert_module_args}}"]
    arguments = yaml.safe_load((ROLES / "vault_cert" / "vars" / "main.yml").read_text(encoding="utf-8"))[
        "__vault_cert_module_args"]
    compared = arguments["prerequisites"]["files"]
    assert _blankless(compared) == "{{__vault_cert_kept_files|mailmesh.imap.host_state_files}}"


def test_envoy_tasks_write_what_the_comparison_expects():
    """Every file, directory and link the envoy converge tasks write has the entry of
    __envoy_kept_files with its path, and the same owner, group, mode, kind, link target
    and text (the content a copy writes; a file of the role's files/ by lookup)."""
    variables = yaml.safe_load((ROLES / "envoy" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert _blankless(variables["__envoy_kept_files"]) == "{{__envoy_binary_files+__envoy_config_files}}"
    kept = variables["__envoy_binary_files"] + variables["__envoy_config_files"]
    by_path = {_blankless(entry["path"]): entry for entry in kept}
    assert len(by_path) == len(kept), "a path is listed twice"
    checked = set()
    for name in CONVERGE["envoy"]:
        for task in _tasks(yaml.safe_load((ROLES / "envoy" / "tasks" / name).read_text(encoding="utf-8"))):
            module = next((m for m in WRITERS if m in task), None)
            if module is None or task.get("delegate_to") == "localhost" or task[module].get("state") == "absent":
                continue
            args = task[module]
            if module == "mailmesh.imap.host_files":
                # The configuration list, each entry as it is, in one call.
                assert _blankless(args["files"]) == \
                    "{{__envoy_config_files|mailmesh.imap.host_state_files(written=true)}}", (name, task["name"])
                checked.update(_blankless(entry["path"]) for entry in variables["__envoy_config_files"])
                continue
            loop = task.get("loop", [None])
            assert isinstance(loop, list), (name, task["name"], loop)
            for item in loop:
                dest = _with_item(args.get("dest", args.get("path")), item)
                entry = by_path.get(_blankless(dest))
                assert entry is not None, (name, task["name"], dest)
                where = (name, task["name"], dest)
                for key in ("owner", "group", "mode"):
                    assert _blankless(entry.get(key)) == _blankless(args.get(key)), where + (key,)
                if args.get("state") in ("directory", "link"):
                    assert entry.get("state") == args["state"], where
                if args.get("state") == "link":
                    assert _blankless(entry.get("target")) == _blankless(args["src"]), where
                elif "content" in args:
                    assert _blankless(entry.get("text")) == _blankless(_with_item(args["content"], item)), where
                elif "src" in args and "{{" not in args["src"]:
                    lookup = "{{ lookup('ansible.builtin.file', '%s', rstrip=false) }}" % args["src"]
                    assert _blankless(entry.get("text")) == _blankless(lookup), where
                checked.add(_blankless(dest))
    # Every entry is written by some task.
    assert checked == set(by_path), set(by_path) - checked


def test_envoy_compares_the_same_way_before_and_after_its_tasks():
    """The first comparison (on the controller, from what envoy_platform observed) and the
    one after the tasks (from what envoy_ready observed, with the same list) take the
    same expected values, and envoy_platform looks at every path of the kept list (the
    binary through its link)."""
    tasks = yaml.safe_load((ROLES / "envoy" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    first = next(t for t in tasks if "ansible.builtin.set_fact" in t and "__envoy_state" in t["ansible.builtin.set_fact"])
    expression = _blankless(first["ansible.builtin.set_fact"]["__envoy_state"]["differences"])
    verify = list(_tasks(yaml.safe_load((ROLES / "envoy" / "tasks" / "verify.yml").read_text(encoding="utf-8"))))
    after = next(t for t in verify if "ansible.builtin.assert" in t)["vars"]["__envoy_differences_after"]
    assert expression == "{{__envoy_platform.observed|mailmesh.imap.host_state_differences(**__envoy_expected)}}"
    assert _blankless(after) == "{{__envoy_ready.observed|mailmesh.imap.host_state_differences(**__envoy_expected)}}"
    ready = next(t for t in verify if "mailmesh.imap.envoy_ready" in t)
    assert _blankless(ready["mailmesh.imap.envoy_ready"]["observe"]) == \
        "{{__envoy_observeif__envoy_compare_again|boolelseomit}}"
    assert ready["register"] == "__envoy_ready"
    variables = yaml.safe_load((ROLES / "envoy" / "vars" / "main.yml").read_text(encoding="utf-8"))
    expected = {key: _blankless(value) if isinstance(value, str) else value
                for key, value in variables["__envoy_expected"].items()}
    assert expected == {"files": "{{__envoy_state_files}}", "packages": "{{__envoy_packages}}",
                        "groups": ["{{ envoy_group }}"], "users": "{{__envoy_state_users}}",
                        "services": "{{__envoy_state_services}}"}
    observe = variables["__envoy_observe"]
    assert _blankless(observe["files"]) == \
        ("{{[{'path':__envoy_binary,'follow':true},{'path':__envoy_cert_files.fullchain}]"
         "+(__envoy_config_files|mailmesh.imap.host_state_observe)}}")
    # The binary: the release file beside the link, which points at it by its name.
    release, link = variables["__envoy_binary_files"]
    assert _blankless(release["path"]) == "{{__envoy_binary_release_path}}"
    assert _blankless(variables["__envoy_binary_release_path"]) == "{{__envoy_binary|dirname}}/{{__envoy_binary_release}}"
    assert (_blankless(link["path"]), link["state"], _blankless(link["target"])) == \
        ("{{__envoy_binary}}", "link", "{{__envoy_binary_release}}")
    # Packages and units: whatever the host's time synchronisation, a superset.
    assert _blankless(observe["packages"]) == "{{__envoy_base_packages+['systemd-timesyncd']+__envoy_cert_packages}}"
    assert _blankless(variables["__envoy_packages"]).startswith("{{__envoy_base_packages+")
    assert observe["services"] == ["{{ __envoy_service }}", "{{ __envoy_quickack_service }}", "systemd-timesyncd"]
    assert observe["users"] == ["{{ envoy_user }}"] and observe["groups"] == ["{{ envoy_group }}"]


def test_envoy_installs_the_certificate_modules_libraries_in_its_own_apt_call():
    """On a new host the envoy role installs its packages and the ones vault_cert would
    install next (one apt transaction, not two): the same names as vault_cert's list, and
    none when vault_cert_install_packages is false."""
    envoy = yaml.safe_load((ROLES / "envoy" / "vars" / "main.yml").read_text(encoding="utf-8"))
    vault_cert = yaml.safe_load((ROLES / "vault_cert" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert _blankless(envoy["__envoy_cert_packages"]) == _blankless(
        "{{ %s if vault_cert_install_packages | default(true) | bool else [] }}" % vault_cert["__vault_cert_packages"])
    assert _blankless(envoy["__envoy_install_packages"]) == "{{__envoy_packages+__envoy_cert_packages}}"
    install = yaml.safe_load((ROLES / "envoy" / "tasks" / "install.yml").read_text(encoding="utf-8"))
    apt = [task for task in _tasks(install) if "ansible.builtin.apt" in task]
    assert [_blankless(task["ansible.builtin.apt"]["name"]) for task in apt] == ["{{__envoy_missing_packages}}"]


@pytest.mark.parametrize("observed, dpkg, missing", [
    # What envoy_platform saw in the preflight: no dpkg-query of the install tasks' own.
    (["ca-certificates", "iproute2"], None, ["systemd-timesyncd", "python3-hvac"]),
    ([], None, ["iproute2", "ca-certificates", "systemd-timesyncd", "python3-hvac"]),
    # It did not look (the apt method, or dpkg-query failed there): the task's dpkg-query.
    (None, "iproute2 ii \nca-certificates ii \npython3-hvac un \n", ["systemd-timesyncd", "python3-hvac"]),
])
def test_envoy_installs_what_the_platform_check_saw_missing(observed, dpkg, missing):
    platform = {"machine": "x86_64"} if observed is None else {"observed": {"packages": observed}}
    templar, tag = _role_templar("envoy", ("__envoy_observed_packages", "__envoy_missing_packages"), {
        "__envoy_install_packages": ["iproute2", "ca-certificates", "systemd-timesyncd", "python3-hvac"],
        "__envoy_platform": platform,
        "__envoy_dpkg": {"skipped": True} if dpkg is None else {"stdout": dpkg},
    })
    assert templar.template(tag("{{ __envoy_missing_packages }}")) == missing
    install = yaml.safe_load((ROLES / "envoy" / "tasks" / "install.yml").read_text(encoding="utf-8"))
    dpkg_task = next(task for task in _tasks(install) if task.get("register") == "__envoy_dpkg")
    assert templar.template(tag("{{ %s }}" % dpkg_task["when"])) is (observed is None)


@pytest.mark.parametrize("packages_seen, files_differ, expected", [
    (["python3-hvac", "python3-cryptography"], True, False),
    (["python3-hvac"], False, True),
    (None, False, True),
])
def test_vault_cert_runs_dpkg_and_apt_only_where_the_comparison_found_a_package(
        packages_seen, files_differ, expected, tmp_path):
    """__vault_cert_packages_differ reads the differences that vault_pki_cert's
    comparison gives (host_state's own messages): a package not installed, or not looked
    at, and nothing else."""
    from ansible_collections.mailmesh.imap.plugins.module_utils import _host_state
    variables = yaml.safe_load((ROLES / "vault_cert" / "vars" / "main.yml").read_text(encoding="utf-8"))
    packages = variables["__vault_cert_packages"]
    files = [{"path": str(tmp_path / ("missing" if files_differ else "")), "state": "directory"}]
    seen = {"files": {files[0]["path"]: _host_state.observe_file(files[0]["path"])}, "packages": packages_seen,
            "groups": [], "users": {}, "services": {}}
    differences = _host_state.compare(seen, files=files, packages=packages)
    assert differences  # something differs in each case: prepare.yml runs
    templar, tag = _role_templar("vault_cert", ("__vault_cert_packages_differ",),
                                 {"__vault_cert_result": {"differences": differences}})
    assert templar.template(tag("{{ __vault_cert_packages_differ }}")) is expected
    # dpkg-query and apt (tasks/packages.yml) only where that says so: before the host
    # is prepared, or (vault_cert_prepare_first) after the call that followed.
    prepare = yaml.safe_load((ROLES / "vault_cert" / "tasks" / "prepare.yml").read_text(encoding="utf-8"))
    includes = {task["ansible.builtin.include_tasks"]: task["when"] for task in _tasks(prepare)
                if "ansible.builtin.include_tasks" in task}
    assert includes == {"packages.yml": ["not vault_cert_prepare_first | bool", "__vault_cert_packages_differ"],
                        "packages_late.yml": ["vault_cert_prepare_first | bool", "__vault_cert_packages_differ"]}


def _role_templar(role, from_vars, values):
    """Ansible's templar and its trust tag, with the variables named in from_vars as the
    role's vars/main.yml defines them (templates, rendered as Ansible renders them) and
    the given values."""
    templar_mod = pytest.importorskip("ansible.template")
    trust = pytest.importorskip("ansible._internal._datatag._tags")
    tag = trust.TrustedAsTemplate().tag
    variables = yaml.safe_load((ROLES / role / "vars" / "main.yml").read_text(encoding="utf-8"))
    return templar_mod.Templar(loader=None, variables={
        **{name: tag(variables[name]) for name in from_vars}, **values}), tag


def _when_holds(templar, tag, task):
    """Whether a task's `when` (a string, a list or none) holds, rendered as Ansible does."""
    when = task.get("when", [])
    return all(templar.template(tag("{{ %s }}" % condition)) for condition in
               ([when] if isinstance(when, str) else when))


def _vault_cert_templar(extra):
    return _role_templar("vault_cert", ("__vault_cert_agent_unit", "__vault_cert_agent_units_changed",
                                        "__vault_cert_ends_after_check"), dict(
        __vault_cert_agent_service_file="/etc/systemd/system/mailmesh-cert-renew.service",
        __vault_cert_agent_timer_file="/etc/systemd/system/mailmesh-cert-renew.timer",
        __vault_cert_agent_dropin_file="/etc/systemd/system/mailmesh-cert-renew.service.d/envoy.conf", **extra))


@pytest.mark.parametrize("after_prepare, written, units, reload", [
    # The first call: no units.
    (False, [], [], False),
    # After prepare.yml: the timer starts in the same call; restarted after a new unit.
    (True, [], [{"name": "mailmesh-cert-renew.timer", "state": "started"}], False),
    (True, ["/etc/systemd/system/mailmesh-cert-renew.timer"],
     [{"name": "mailmesh-cert-renew.timer", "state": "restarted"}], True),
])
def test_vault_cert_starts_the_renewal_timer_in_the_certificate_call_after_prepare(after_prepare, written, units, reload):
    """tasks/cert.yml's units and daemon_reload, rendered as Ansible renders them, are
    what vault_pki_cert's argument spec takes."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.mailmesh.imap.plugins.modules import vault_pki_cert
    extra = {"vault_cert_agent_enabled": True, "__vault_cert_written": {"paths": written}}
    if after_prepare:
        extra["__vault_cert_after_prepare"] = True
    templar, tag = _vault_cert_templar(extra)
    task = yaml.safe_load((ROLES / "vault_cert" / "vars" / "main.yml").read_text(encoding="utf-8"))[
        "__vault_cert_module_args"]
    rendered = templar.template(tag(task["units"]))
    assert rendered == units
    assert templar.template(tag(task["daemon_reload"])) is reload
    spec = vault_pki_cert.argument_spec()
    validated = ArgumentSpecValidator({"units": spec["units"], "daemon_reload": spec["daemon_reload"]}).validate(
        {"units": rendered, "daemon_reload": reload})
    assert not validated.error_messages, validated.error_messages


@pytest.mark.parametrize("prepare_first, differences, first_call, prepare", [
    (False, [], True, False),
    (False, ["/etc/mailmesh/tls/envoy: missing"], True, True),
    # A new host: prepare.yml at once, without the first call (whose result is not there).
    (True, None, False, True),
])
def test_vault_cert_prepare_first_skips_the_first_call(prepare_first, differences, first_call, prepare):
    extra = {"vault_cert_state": "present", "vault_cert_prepare_first": prepare_first}
    if differences is not None:
        extra["__vault_cert_result"] = {"differences": differences}
    templar, tag = _vault_cert_templar(extra)
    main = _tasks(yaml.safe_load((ROLES / "vault_cert" / "tasks" / "main.yml").read_text(encoding="utf-8")))
    cert = next(t for t in main if t.get("ansible.builtin.import_tasks") == "cert.yml")
    include = next(t for t in main if t.get("ansible.builtin.include_tasks") == "prepare.yml")
    assert _when_holds(templar, tag, cert) is first_call
    assert _when_holds(templar, tag, include) is prepare


@pytest.mark.parametrize("observed, missing", [
    ({"files": {"/etc/mailmesh/tls/envoy/fullchain.pem": {"kind": None}}}, True),
    ({"files": {"/etc/mailmesh/tls/envoy/fullchain.pem": {"kind": "file"}}}, False),
    # The apt install method: nothing observed, the usual order.
    (None, False),
])
def test_envoy_has_vault_cert_prepare_a_host_without_a_certificate_first(observed, missing):
    templar, tag = _role_templar("envoy", ("__envoy_cert_missing",), {
        "__envoy_platform": {"machine": "x86_64"} if observed is None else {"observed": observed},
        "__envoy_cert_files": {"fullchain": "/etc/mailmesh/tls/envoy/fullchain.pem"},
    })
    assert templar.template(tag("{{ __envoy_cert_missing }}")) is missing
    certificate = yaml.safe_load((ROLES / "envoy" / "tasks" / "certificate.yml").read_text(encoding="utf-8"))
    assert next(_tasks(certificate))["vars"]["vault_cert_prepare_first"] == "{{ __envoy_cert_missing }}"


@pytest.mark.parametrize("container, quickack, timesync, restart, expected", [
    (False, True, True, False, [{"name": "envoy", "state": "started"}, {"name": "mailmesh-quickack", "state": "started"},
                                {"name": "systemd-timesyncd", "state": "started"}]),
    # In a container systemd-timesyncd is only enabled (no state: neither started nor stopped).
    (True, True, True, True, [{"name": "envoy", "state": "restarted"}, {"name": "mailmesh-quickack", "state": "started"},
                              {"name": "systemd-timesyncd"}]),
    (False, False, False, False, [{"name": "envoy", "state": "started"}]),
])
def test_envoy_units_are_what_host_units_accepts(container, quickack, timesync, restart, expected):
    """__envoy_units as tasks/service.yml passes it, rendered, and checked against
    host_units' own argument spec (a null state, say, would be refused there)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.mailmesh.imap.plugins.modules import host_units
    templar, tag = _role_templar("envoy", ("__envoy_units",), {
        "__envoy_service": "envoy", "__envoy_quickack_service": "mailmesh-quickack",
        "__envoy_restart": restart, "__envoy_quickack_rerun": False, "envoy_quickack": quickack,
        "__envoy_timesync_install": timesync, "__envoy_platform": {"container": container},
    })
    units = templar.template(tag("{{ __envoy_units }}"))
    assert units == expected
    spec = yaml.safe_load(host_units.DOCUMENTATION)["options"]["units"]
    validator = ArgumentSpecValidator({"units": {"type": "list", "elements": "dict", "options": {
        name: {key: value for key, value in option.items() if key in ("type", "required", "default", "choices")}
        for name, option in spec["suboptions"].items()}}})
    result = validator.validate({"units": units})
    assert not result.error_messages, result.error_messages


def _after_end_role(role, task_file="main.yml", which=0):
    """The end_role task of a task file (the first, or the which-th), and every task after
    it there and in the files those tasks import (included files run only where their
    own `when` holds)."""
    tasks = list(_tasks(yaml.safe_load((ROLES / role / "tasks" / task_file).read_text(encoding="utf-8"))))
    index = [number for number, task in enumerate(tasks) if task.get("ansible.builtin.meta") == "end_role"][which]
    after = []
    for task in tasks[index + 1:]:
        imported = task.get("ansible.builtin.import_tasks")
        if imported:
            inner = list(_tasks(yaml.safe_load((ROLES / role / "tasks" / imported).read_text(encoding="utf-8"))))
            # An import's `when` applies to each of its tasks.
            after.extend(dict(t, when=[task["when"]] + ([t["when"]] if isinstance(t.get("when"), str)
                                                        else t.get("when", [])))
                         if "when" in task else t for t in inner)
        else:
            after.append(task)
    return tasks[index], after


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("prepare_first", [False, True])
@pytest.mark.parametrize("differences", [[], ["/etc/mailmesh/tls/envoy: missing"]])
@pytest.mark.parametrize("crl_format", ["", "envoy"])
@pytest.mark.parametrize("agent_enabled", [True, False])
@pytest.mark.parametrize("check_mode", [False, True])
def test_vault_cert_ends_only_where_every_task_after_would_be_skipped(
        state, prepare_first, differences, crl_format, agent_enabled, check_mode):
    """meta end_role after the certificate's call (decided on the controller, no worker per
    host) leaves out only tasks that would be skipped anyway; where it does not hold, the
    tasks after it run as before."""
    templar, tag = _vault_cert_templar({
        "vault_cert_state": state, "vault_cert_prepare_first": prepare_first,
        "__vault_cert_result": {"differences": differences}, "vault_cert_crl_format": crl_format,
        "vault_cert_agent_enabled": agent_enabled, "ansible_check_mode": check_mode})
    end_role, after = _after_end_role("vault_cert")
    assert [t.get("name") for t in after] == [
        "Remove the certificate's files and its renewal entry",
        "Install the packages, the directories and the renewal agent, then keep the certificate",
        "Fetch the CRLs and write the CRL setting for {{ vault_cert_service }}",
        "Remove the renewal agent's entry for this certificate"]
    if _when_holds(templar, tag, end_role):
        assert not [task["name"] for task in after if _when_holds(templar, tag, task)]
    # It ends the role on a host as the role keeps it, the fleet's re-run.
    assert _when_holds(templar, tag, end_role) is (
        state == "present" and not prepare_first and not differences and not crl_format and agent_enabled)


@pytest.mark.parametrize("kept", [None, False, True])
@pytest.mark.parametrize("cert_changed", [False, True])
@pytest.mark.parametrize("problem", [None, "", "not ready"])
@pytest.mark.parametrize("method, differences", [("wheel", []), ("wheel", ["envoy.service: not active"]),
                                                 ("apt", [])])
@pytest.mark.parametrize("check_mode", [False, True])
def test_envoy_ends_only_where_every_task_after_would_be_skipped(kept, cert_changed, problem, method, differences,
                                                                 check_mode):
    """The envoy role's two end_role tasks leave out only tasks that would be skipped:
    the first (before the install) where envoy_platform found the certificate kept
    (kept: its certificate answer's keep; None: not asked), the second after vault_cert
    ran. A __vault_cert_result left from another instance of vault_cert on the host
    (dovecot's) does not count where vault_cert was not included."""
    platform = {"machine": "x86_64"} if problem is None else {"envoy": {"problem": problem}}
    if kept is not None:
        platform["certificate"] = {"keep": kept}
    templar, tag = _role_templar("envoy", ("__envoy_converge", "__envoy_verify", "__envoy_compare_again",
                                           "__envoy_cert_kept", "__envoy_cert_changed"), {
        "envoy_install_method": method, "__envoy_state": {"differences": differences},
        "__vault_cert_result": {"changed": cert_changed}, "__envoy_platform": platform,
        "ansible_check_mode": check_mode})
    first, after_first = _after_end_role("envoy")
    second, after_second = _after_end_role("envoy", which=1)
    assert [t.get("ansible.builtin.meta") or t.get("name") for t in after_first] == [
        "Install Envoy", "Keep the sidecar's certificate from Vault",
        "end_role"] + [t.get("ansible.builtin.meta") or t.get("name") for t in after_second]
    assert [t.get("ansible.builtin.meta") or t.get("name") for t in after_second] == [
        "Configure and start Envoy", "flush_handlers", "Check that Envoy is ready and serves its certificate",
        "Compare the host again after the tasks ran"]
    for end_role, after in ((first, after_first), (second, after_second)):
        if _when_holds(templar, tag, end_role):
            assert not [t["name"] for t in after
                        if "when" in t and "ansible.builtin.meta" not in t and _when_holds(templar, tag, t)]
    # A host as the role keeps it ends before the install where the certificate was kept.
    assert _when_holds(templar, tag, first) is (
        kept is True and method != "apt" and not differences and problem == "")
    # Else vault_cert runs (its include's when), and the role ends after it where it changed nothing.
    include = next(t for t in after_first if t.get("name") == "Keep the sidecar's certificate from Vault")
    assert _when_holds(templar, tag, include) is (kept is not True)
    if not _when_holds(templar, tag, first):
        assert _when_holds(templar, tag, second) is (
            method != "apt" and not differences and not (cert_changed and kept is not True) and problem == "")
