"""The changelog follows antsibull-changelog's conventions: the fragments lint, the next
release has one release summary, new roles, playbooks and filters are listed as objects
and plugins, and no entry is about the test harness or the container lab (which users do
not get). A release made from the fragments in a copy lists every role, playbook, filter
and module."""

from __future__ import annotations

import re
import shutil

import yaml

from ansible_collections.mailmesh.imap.tests.unit.packaging._support import (
    REPO,
    clean_env,
    galaxy_version,
    run,
    tool,
)

FRAGMENTS = REPO / "changelogs" / "fragments"
# Subjects of entries that are about the repository's harness or lab, not the collection.
NOT_FOR_USERS = re.compile(
    r"^(?:lab|tests?|test harness|harness|benchmarks?|molecule(?: scenarios?)?[^-]*|``make [a-z-]+``[^-]*"
    r"|``benchmarks/``)\s+-|\bmake (?:lab|test|images)\b|\bmolecule\b|``benchmarks/|\btests/",
    re.I,
)


def _fragments():
    return {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(FRAGMENTS.glob("*.yml"))}


def _roles():
    return sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "main.yml").is_file())


def _playbooks():
    return sorted(p.stem for p in (REPO / "playbooks").glob("*.yml") if not p.name.startswith("lab"))


def _filters():
    return sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.yml"))


def _modules():
    return sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))


def test_antsibull_changelog_lint():
    for argv in (["lint"], ["lint-changelog-yaml", "changelogs/changelog.yaml"]):
        done = run([tool("antsibull-changelog")] + argv, env=clean_env(), cwd=str(REPO))
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_one_release_summary():
    summaries = [name for name, fragment in _fragments().items() if "release_summary" in fragment]
    assert len(summaries) == 1, summaries


def test_new_objects_and_filters_are_listed():
    listed: dict[str, dict[str, str]] = {}
    for fragment in _fragments().values():
        for section, entries in fragment.items():
            if section.startswith("add "):
                for entry in entries:
                    assert entry["name"] not in listed.get(section, {}), (section, entry["name"])
                    assert entry["description"].strip(), (section, entry["name"])
                    listed.setdefault(section, {})[entry["name"]] = entry["description"]
    assert sorted(listed.get("add object.role", {})) == _roles()
    assert sorted(listed.get("add object.playbook", {})) == _playbooks()
    assert sorted(listed.get("add plugin.filter", {})) == _filters()
    # The descriptions are the short descriptions of the docs.
    for role, description in listed["add object.role"].items():
        specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
        assert description == specs["argument_specs"]["main"]["short_description"], role
    for name, description in listed["add plugin.filter"].items():
        doc = yaml.safe_load((REPO / "plugins" / "filter" / (name + ".yml")).read_text(encoding="utf-8"))
        assert description == doc["DOCUMENTATION"]["short_description"], name


def test_no_entry_about_the_harness_or_the_lab():
    found = []
    for name, fragment in _fragments().items():
        for section, entries in fragment.items():
            if section.startswith("add ") or not isinstance(entries, list):
                continue
            found += ["%s: %s" % (name, entry[:100]) for entry in entries if NOT_FOR_USERS.search(entry)]
    assert not found, "entries about the harness or the lab:\n" + "\n".join(found)


def test_not_for_users_pattern():
    assert NOT_FOR_USERS.search("lab - ``make lab`` applies ...")
    assert NOT_FOR_USERS.search("Test harness - base image recipe")
    assert NOT_FOR_USERS.search("Molecule scenario ``e2e`` - the lab's shape")
    assert NOT_FOR_USERS.search("``benchmarks/`` - ``imapload.py``")
    assert not NOT_FOR_USERS.search("envoy - a re-run first compares the host (measured on the container lab)")


def test_a_release_lists_every_role_playbook_filter_and_module(tmp_path):
    """`antsibull-changelog release` in a copy of the collection: the new version's entry
    in changelog.yaml has the summary, and every role, playbook, filter and module."""
    copy = tmp_path / "collection"
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                  "galaxy.yml", "changelogs", "plugins", "roles", "meta", "playbooks"], cwd=str(REPO))
    assert listed.returncode == 0, listed.stderr
    for name in listed.stdout.split():
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, copy / name)
    version = galaxy_version()
    done = run([tool("antsibull-changelog"), "release", "--version", version, "--date", "2026-01-01"],
               env=clean_env(), cwd=str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    release = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text(encoding="utf-8"))["releases"][version]
    assert release["changes"]["release_summary"].strip()
    assert sorted(o["name"] for o in release["objects"]["role"]) == _roles()
    assert sorted(o["name"] for o in release["objects"]["playbook"]) == _playbooks()
    assert sorted(p["name"] for p in release["plugins"]["filter"]) == _filters()
    assert sorted(m["name"] for m in release["modules"]) == _modules()
    rst = (copy / "CHANGELOG.rst").read_text(encoding="utf-8")
    for title in ("Release Summary", "New Roles", "New Playbooks", "New Plugins", "New Modules"):
        assert title in rst, title
