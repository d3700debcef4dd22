"""The checkout's ansible.cfg: a hand run in the repository (after `make venv` or `make
lab`) finds the collection as the Makefile's runs do, the Makefile's environment still
wins, and the file sets nothing the Makefile does not (no strategy)."""

from __future__ import annotations

import configparser
import json
import re

from ansible_collections.mailmesh.imap.tests.unit.packaging._support import REPO, clean_env, run, tool

# ansible.cfg key -> (the Makefile's exported variable, its value with $(BUILD) as .build).
MAKEFILE_EQUIVALENT = {
    "collections_path": ("ANSIBLE_COLLECTIONS_PATH", "$(BUILD)/collections"),
    "inject_facts_as_vars": ("ANSIBLE_INJECT_FACT_VARS", "False"),
}


def _cfg():
    parser = configparser.ConfigParser()
    parser.read(REPO / "ansible.cfg", encoding="utf-8")
    return parser


def _dump(**env):
    done = run([tool("ansible-config"), "dump", "--only-changed", "--format", "json"],
               env=clean_env(**env), cwd=str(REPO))
    assert done.returncode == 0, done.stdout + done.stderr
    return {entry["name"]: entry for entry in json.loads(done.stdout) if isinstance(entry, dict) and "name" in entry}


def test_every_setting_is_one_the_makefile_exports():
    cfg = _cfg()
    assert cfg.sections() == ["defaults"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    exported = dict(re.findall(r"^export (ANSIBLE_\w+) := (.*)$", makefile, re.M))
    for key, value in cfg.items("defaults"):
        assert key in MAKEFILE_EQUIVALENT, "%s: not a setting the Makefile exports" % key
        variable, make_value = MAKEFILE_EQUIVALENT[key]
        assert exported.get(variable) == make_value, (variable, exported.get(variable))
        assert value == make_value.replace("$(BUILD)", ".build"), (key, value)
    assert not {"strategy", "strategy_plugins"} & set(cfg["defaults"])


def test_a_hand_run_reads_it():
    dump = _dump()
    assert dump["CONFIG_FILE"]["value"] == str(REPO / "ansible.cfg")
    # Relative to the file, whatever the working directory.
    assert dump["COLLECTIONS_PATHS"]["value"] == [str(REPO / ".build" / "collections")]
    assert dump["INJECT_FACTS_AS_VARS"]["value"] is False
    assert "DEFAULT_STRATEGY" not in dump


def test_the_makefile_environment_wins():
    dump = _dump(ANSIBLE_COLLECTIONS_PATH="/elsewhere", ANSIBLE_INJECT_FACT_VARS="True")
    assert dump["COLLECTIONS_PATHS"] == {"name": "COLLECTIONS_PATHS", "origin": "env: ANSIBLE_COLLECTIONS_PATH",
                                         "value": ["/elsewhere"]}
    assert dump["INJECT_FACTS_AS_VARS"]["origin"] == "env: ANSIBLE_INJECT_FACT_VARS"
    assert dump["INJECT_FACTS_AS_VARS"]["value"] is True


def test_the_lab_tier_runs_by_hand():
    """`ansible-playbook -i inventories/lab playbooks/site.yml --tags gateways` without the
    Makefile's environment finds the roles (it failed with "the role
    'mailmesh.imap.envoy' was not found" before the file existed)."""
    done = run([tool("ansible-playbook"), "-i", "inventories/lab", "playbooks/site.yml", "--tags", "gateways",
                "--list-tasks"], env=clean_env(), cwd=str(REPO))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mailmesh.imap.envoy : " in done.stdout
    assert "mailmesh.imap.nginx_mail : " in done.stdout
