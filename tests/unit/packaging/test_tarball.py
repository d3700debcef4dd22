"""The collection tarball as `ansible-galaxy collection build` makes it from this checkout.

Only what an installed collection uses ships: no test harness, image recipes, molecule
scenarios, benchmarks, lab, lint or pytest configuration, development requirements or
build output. Every shipped playbook finds what it imports, runs and reads inside the
tarball, names no collection that galaxy.yml does not declare, and runs by its FQCN
from a copy installed from the tarball alone.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

import yaml

from ansible_collections.mailmesh.imap.tests.unit.packaging._support import (
    COLLECTION,
    CORE_COLLECTIONS,
    FQCN,
    clean_env,
    fqcn_references,
    galaxy_dependencies,
    galaxy_version,
    run,
    tool,
    walk_tasks,
)

# Top-level entries of the tarball, each with what it is for. Anything else fails.
ALLOWED_TOP_LEVEL = {
    "MANIFEST.json": "written by ansible-galaxy",
    "FILES.json": "written by ansible-galaxy",
    "README.md": "galaxy.yml's readme",
    "CHANGELOG.rst": "antsibull-changelog writes it at a release (changelogs/config.yaml)",
    "bindep.txt": "system packages of the controller side (meta/execution-environment.yml)",
    "changelogs": "changelog.yaml and the fragments of the next release",
    "docs": "architecture, operations, performance",
    "inventories": "the example inventory (inventories/example)",
    "meta": "runtime.yml and the Execution Environment metadata",
    "playbooks": "the playbooks a user runs by FQCN",
    "plugins": "modules, module_utils, filters, doc fragments",
    "roles": "the roles",
    "tests": "the unit tests of plugins and roles (ansible-test units) and sanity ignores",
}
# Second-level entries allowed under some of those.
ALLOWED_UNDER = {
    "tests": {"unit", "sanity"},
    "inventories": {"example"},
}
# fnmatch patterns on member paths that must never be in the tarball, with the reason.
DENIED = [
    (".*", "dot files: repository, CI, lint and molecule configuration, caches"),
    ("*/.*", "dot files: repository, CI, lint and molecule configuration, caches"),
    ("Makefile", "the test harness"),
    ("pytest.ini", "pytest configuration"),
    ("ansible.cfg", "the checkout's settings for the lab and the harness"),
    ("requirements.yml", "installs this collection from its tarball (the checkout's)"),
    ("execution-environment.yml", "builds an EE from the tarball (the checkout's)"),
    ("requirements", "development requirements"),
    ("requirements/*", "development requirements"),
    ("images", "stale image recipes"),
    ("molecule", "molecule scenarios"),
    ("molecule/*", "molecule scenarios"),
    ("benchmarks", "benchmarks"),
    ("benchmarks/*", "benchmarks"),
    ("tests/harness*", "the test harness"),
    ("tests/images*", "image recipes"),
    ("tests/integration*", "integration tests need the harness's OpenBao and Envoy"),
    ("tests/molecule*", "molecule wrappers"),
    ("tests/output*", "ansible-test output"),
    ("tests/conftest.py", "the checkout's pytest set-up"),
    ("tests/unit/packaging*", "these tests need the checkout"),
    ("tests/unit/test_benchmark_*", "test the benchmarks, which do not ship"),
    ("tests/unit/test_harness_*", "test the harness, which does not ship"),
    ("tests/unit/test_inventories.py", "tests the lab inventory, which does not ship"),
    ("tests/unit/test_reliability_page.py", "checks docs/reliability.md against the tests, which do not ship"),
    ("inventories/lab*", "the container lab"),
    ("playbooks/lab*", "the container lab"),
    ("playbooks/files/lab_*", "the container lab"),
    ("playbooks/templates/lab-*", "the container lab"),
    ("docs/development.md", "the developers' guide (harness, lab)"),
    ("docs/lab.md", "the container lab's guide"),
    ("docs/reliability.md", "the faults and refusals with the tests that prove them (the tests do not ship)"),
    ("*__pycache__*", "Python caches"),
    ("*.py[co]", "Python caches"),
    ("*.tar.gz", "built tarballs"),
]
# The playbooks users run by FQCN (README.md, docs/operations.md).
PLAYBOOKS = {"site", "vault", "mailstores", "gateways", "edge", "rotate_certs", "vault_backup", "vault_restore", "revoke_host"}


def test_top_level_entries_are_allowed(tarball):
    unexpected = sorted({name.split("/")[0] for name in tarball.files | tarball.dirs} - set(ALLOWED_TOP_LEVEL))
    assert not unexpected, "not allowed at the top of the tarball: %s" % unexpected
    for top, allowed in ALLOWED_UNDER.items():
        under = {name.split("/")[1] for name in tarball.files | tarball.dirs if name.startswith(top + "/")}
        assert under <= allowed, "not allowed under %s/: %s" % (top, sorted(under - allowed))


def test_nothing_denied_ships(tarball):
    found = [
        "%s (%s)" % (name, reason)
        for name in sorted(tarball.files | tarball.dirs)
        for pattern, reason in DENIED
        if fnmatch.fnmatchcase(name, pattern)
    ]
    assert not found, "in the tarball but must not be:\n" + "\n".join(found)


def test_no_empty_directories(tarball):
    empty = sorted(d for d in tarball.dirs if not any(name.startswith(d + "/") for name in tarball.files))
    assert not empty, "empty directories in the tarball (everything in them is excluded): %s" % empty


def test_what_users_need_ships(tarball):
    for name in ("README.md", "meta/runtime.yml", "meta/execution-environment.yml", "meta/ee-requirements.txt",
                 "bindep.txt", "inventories/example/hosts.yml", "inventories/example/README.md",
                 "playbooks/files/raft_snapshot_check.py"):
        assert name in tarball.files, name
    shipped = {posixpath.splitext(posixpath.basename(name))[0]
               for name in tarball.files if re.fullmatch(r"playbooks/[^/]+\.ya?ml", name)}
    assert shipped == PLAYBOOKS
    for role in ("vault_server", "vault_cert", "dovecot", "nginx_mail", "envoy"):
        assert "roles/%s/README.md" % role in tarball.files, role
        assert "roles/%s/meta/argument_specs.yml" % role in tarball.files, role


def test_manifest_version_is_galaxy_version(tarball):
    assert tarball.path.name == "mailmesh-imap-%s.tar.gz" % galaxy_version()


def _playbooks(tarball):
    for name in sorted(tarball.files):
        if re.fullmatch(r"playbooks/[^/]+\.ya?ml", name):
            yield name, yaml.safe_load(tarball.texts[name])


def test_playbook_references_resolve_inside_the_tarball(tarball):
    """import_playbook targets, and the files and templates a playbook reads or runs (by
    relative name or through {{ playbook_dir }}), are in the tarball."""
    problems = []
    for name, plays in _playbooks(tarball):
        wanted = []
        for task in walk_tasks(plays):
            for key, value in task.items():
                short = key.split(".")[-1]
                if short == "import_playbook":
                    wanted.append(posixpath.join("playbooks", value))
                elif short in ("template", "copy") and isinstance(value, dict) and "src" in value \
                        and "{{" not in value["src"]:
                    folder = "templates" if short == "template" else "files"
                    wanted.append(posixpath.join("playbooks", folder, value["src"]))
        text = tarball.texts[name]
        wanted += ["playbooks/" + path for path in re.findall(r"\{\{\s*playbook_dir\s*\}\}/([\w./-]+)", text)]
        wanted += ["playbooks/files/" + path for path in
                   re.findall(r"lookup\(\s*'(?:ansible\.builtin\.)?file'\s*,\s*'([\w./-]+)'", text)]
        problems += ["%s: %s is not in the tarball" % (name, path) for path in wanted if path not in tarball.files]
    assert not problems, "\n".join(problems)


def _own_content_exists(tarball, short):
    return (
        "roles/%s/meta/main.yml" % short in tarball.files
        or "plugins/modules/%s.py" % short in tarball.files
        or "plugins/filter/%s.yml" % short in tarball.files
        or "plugins/lookup/%s.py" % short in tarball.files
        or short in (yaml.safe_load(tarball.texts["meta/runtime.yml"]).get("action_groups") or {})
    )


def test_shipped_content_needs_no_undeclared_collection(tarball):
    """Playbooks and roles name only ansible.builtin, this collection (a role, module,
    filter or action group that ships), and what galaxy.yml declares as dependencies."""
    declared = CORE_COLLECTIONS | {COLLECTION} | galaxy_dependencies()
    problems = []
    for name, text in sorted(tarball.texts.items()):
        if not (name.startswith(("playbooks/", "roles/")) and name.endswith((".yml", ".yaml", ".j2"))):
            continue
        document = yaml.safe_load(text) if name.endswith((".yml", ".yaml")) else None
        for fqcn in sorted(fqcn_references(document, None if document is not None else text)):
            namespace, collection, short = FQCN.match(fqcn).groups()
            if "%s.%s" % (namespace, collection) not in declared:
                problems.append("%s: %s (collection %s.%s is not in galaxy.yml's dependencies)"
                                % (name, fqcn, namespace, collection))
            elif fqcn.startswith(COLLECTION + ".") and not _own_content_exists(tarball, short):
                problems.append("%s: %s is not in the tarball" % (name, fqcn))
    assert not problems, "\n".join(problems)


def test_fqcn_scan_sees_other_collections():
    """The scan above would notice the lab's community.docker modules."""
    plays = [{"hosts": "localhost", "tasks": [{"community.docker.docker_network": {"name": "x"}},
                                               {"ansible.builtin.debug": {"msg": "{{ x | community.general.to_x }}"}}],
              "roles": [{"role": "other.coll.role"}]}]
    assert fqcn_references(plays) == {"community.docker.docker_network", "ansible.builtin.debug",
                                      "community.general.to_x", "other.coll.role"}


def test_playbooks_run_by_fqcn_from_the_installed_tarball(installed, tmp_path):
    """`ansible-playbook mailmesh.imap.<name> --syntax-check` for every shipped playbook
    (one run), with only the installed copy on the collections path, outside the checkout
    (so the checkout's ansible.cfg is not read)."""
    done = run(
        [tool("ansible-playbook"), "-i", "localhost,", "--syntax-check"]
        + ["%s.%s" % (COLLECTION, playbook) for playbook in sorted(PLAYBOOKS)],
        env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False",
                      ANSIBLE_HOME=str(tmp_path / "ansible-home")),
        cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for playbook in sorted(PLAYBOOKS):
        path = installed / "ansible_collections" / "mailmesh" / "imap" / "playbooks" / (playbook + ".yml")
        assert "playbook: %s" % path in done.stdout, playbook
