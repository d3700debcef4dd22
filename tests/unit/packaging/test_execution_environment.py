"""The Execution Environment definition (execution-environment.yml, requirements.yml) and
the collection's EE metadata (meta/execution-environment.yml, meta/ee-requirements.txt,
bindep.txt).

`ansible-builder create` writes the build context (no container build, no network), the
galaxy stage's install works from that context, `ansible-builder introspect` finds the
collection's Python and system packages in an installed copy, and those lists match
what the controller side really imports and runs.
"""

from __future__ import annotations

import pathlib
import re
import shutil

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ansible_collections.mailmesh.imap.tests.unit.packaging._support import (
    COLLECTION,
    REPO,
    clean_env,
    galaxy_version,
    run,
    third_party_imports,
    tool,
    walk_tasks,
)

LOCALHOST = ("localhost", "127.0.0.1")
# What the definition reads, relative to the repository root.
DEFINITION_FILES = ("execution-environment.yml", "requirements.yml", "meta/ee-requirements.txt", "bindep.txt",
                    "meta/execution-environment.yml")


def _yaml(relative):
    return yaml.safe_load((REPO / relative).read_text(encoding="utf-8"))


def _requirement_lines(path):
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _controller_tasks():
    """(file, task) for every task of the shipped roles and playbooks that runs on the
    controller: delegated to localhost, or in a play on localhost / connection local."""
    shipped = [p for p in sorted((REPO / "playbooks").glob("*.yml")) if not p.name.startswith("lab")]
    for path in shipped:
        for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            local_play = play.get("hosts") in LOCALHOST or play.get("connection") == "local"
            for task in list(walk_tasks([play]))[1:]:  # the first is the play itself
                if local_play or task.get("delegate_to") in LOCALHOST:
                    yield path, task
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")) + sorted(REPO.glob("roles/*/handlers/*.yml")):
        for task in walk_tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
            if task.get("delegate_to") in LOCALHOST:
                yield path, task


def _controller_side_python():
    """The collection's Python that runs on the controller: every plugin but modules and
    module_utils, the modules of the action group `vault` (Vault API clients, which the
    README says may run on the controller), and any module a shipped role or playbook
    runs on localhost."""
    plugins = REPO / "plugins"
    files = [p for p in sorted(plugins.rglob("*.py"))
             if p.relative_to(plugins).parts[0] not in ("modules", "module_utils")]
    modules = set(_yaml("meta/runtime.yml")["action_groups"]["vault"])
    for _, task in _controller_tasks():
        modules.update(key.split(".")[-1] for key in task if key.startswith(COLLECTION + "."))
    files += [plugins / "modules" / (name + ".py") for name in sorted(modules)]
    return files


def test_ee_requirements_are_the_controller_side_imports():
    """meta/ee-requirements.txt names exactly the distributions the controller-side code
    imports (module_utils followed), mapped through the venv's installed packages."""
    from importlib.metadata import packages_distributions  # pylint: disable=import-outside-toplevel

    imports = third_party_imports(REPO, _controller_side_python())
    assert imports, "no third-party import found at all: the scan is broken"
    other_collections = sorted(name for name in imports if name.startswith("ansible_collections."))
    assert not other_collections, "controller-side code imports another collection: %s" % other_collections
    distributions = packages_distributions()
    unknown = sorted(name for name in imports if name not in distributions)
    assert not unknown, "imported but not installed in the venv (add it to requirements/controller.txt): %s" % unknown
    imported = {canonicalize_name(dist) for name in imports for dist in distributions[name]}
    listed = {canonicalize_name(Requirement(line).name) for line in _requirement_lines(REPO / "meta/ee-requirements.txt")}
    assert listed == imported, {
        "imported but not in meta/ee-requirements.txt": sorted(imported - listed),
        "in meta/ee-requirements.txt but not imported": sorted(listed - imported),
        "imports": {name: sorted(paths) for name, paths in imports.items()},
    }


def test_the_controller_side_scan_sees_lazy_imports():
    """hvac is imported inside functions (on first use): the scan still finds it."""
    imports = third_party_imports(REPO, [REPO / "plugins" / "modules" / "vault_init.py"])
    assert "hvac" in imports


def test_bindep_lists_what_controller_tasks_run():
    """bindep.txt parses, and names tar, gzip and unzip for both package families when a
    role unpacks an archive on the controller (ansible.builtin.unarchive)."""
    from bindep.depends import Depends  # pylint: disable=import-outside-toplevel

    depends = Depends((REPO / "bindep.txt").read_text(encoding="utf-8"))
    unpacks = [str(path.relative_to(REPO)) for path, task in _controller_tasks()
               if {"ansible.builtin.unarchive", "unarchive"} & set(task)]
    assert unpacks, "no task unpacks on the controller any more: review bindep.txt"
    for profile in ("platform:dpkg", "platform:rpm"):
        packages = {rule[0] for rule in depends.active_rules([profile])}
        assert {"tar", "gzip", "unzip"} <= packages, (profile, sorted(packages))


def test_collection_ee_metadata_points_at_the_files():
    meta = _yaml("meta/execution-environment.yml")
    assert meta["dependencies"] == {"python": "meta/ee-requirements.txt", "system": "bindep.txt"}


def test_definition_pins_the_tested_ansible_core():
    definition = _yaml("execution-environment.yml")
    assert definition["version"] == 3
    pins = dict(re.findall(r"^(ansible-core)==(\S+)", (REPO / "requirements/controller.txt").read_text(), re.M))
    assert definition["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==%s" % pins["ansible-core"]
    assert re.fullmatch(r"ansible-runner==[\d.]+", definition["dependencies"]["ansible_runner"]["package_pip"])
    assert definition["dependencies"]["galaxy"] == "requirements.yml"


def test_requirements_yml_names_this_version_tarball():
    requirements = _yaml("requirements.yml")
    assert requirements["collections"] == [{"name": "mailmesh-imap-%s.tar.gz" % galaxy_version(), "type": "file"}]
    assert not requirements.get("roles")


def _definition_copy(directory: pathlib.Path, tarball) -> pathlib.Path:
    for relative in DEFINITION_FILES:
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relative, directory / relative)
    shutil.copy(tarball.path, directory / tarball.path.name)
    return directory


def test_ansible_builder_create(tarball, tmp_path):
    """ansible-builder create writes the Containerfile and a context that holds
    requirements.yml and the tarball it names, and installs the pinned ansible-core."""
    source = _definition_copy(tmp_path / "source", tarball)
    context = tmp_path / "context"
    done = run([tool("ansible-builder"), "create", "--file", str(source / "execution-environment.yml"),
                "--context", str(context), "--output-filename", "Containerfile"],
               env=clean_env(), cwd=str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    assert "ansible-galaxy collection install" in containerfile
    assert "-r requirements.yml" in containerfile
    assert 'ANSIBLE_INSTALL_REFS="%s ' % _yaml("execution-environment.yml")["dependencies"]["ansible_core"][
        "package_pip"] in containerfile
    build = context / "_build"
    assert (build / "requirements.yml").read_text() == (REPO / "requirements.yml").read_text()
    assert (build / tarball.path.name).is_file()

    # The galaxy stage: `ansible-galaxy collection install -r requirements.yml` in _build.
    collections = tmp_path / "collections"
    done = run([tool("ansible-galaxy"), "collection", "install", "--offline", "-r", "requirements.yml",
                "-p", str(collections)], env=clean_env(), cwd=str(build))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = collections / "ansible_collections" / "mailmesh" / "imap" / "MANIFEST.json"
    assert manifest.is_file()


def test_ansible_builder_introspect_reads_the_installed_collection(installed):
    """What the builder stage runs: the collection's Python and system packages, from its
    meta/execution-environment.yml in the installed copy."""
    done = run([tool("ansible-builder"), "introspect", str(installed)], env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    found = yaml.safe_load(done.stdout.split("\n", 1)[1])
    suffix = "  # from collection %s" % COLLECTION
    assert [line.removesuffix(suffix) for line in found["python"]] == _requirement_lines(
        REPO / "meta/ee-requirements.txt")
    assert [line.removesuffix(suffix) for line in found["system"]] == _requirement_lines(REPO / "bindep.txt")
