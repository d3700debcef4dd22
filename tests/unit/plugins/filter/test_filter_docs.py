"""Every filter of plugins/filter/ has its documentation sidecar, and every sidecar names
a filter that a FilterModule registers (the filters of the roles' vars included)."""

import importlib
import pathlib

import pytest
import yaml

FILTER_DIR = pathlib.Path(__file__).resolve().parents[4] / "plugins" / "filter"
PACKAGE = "ansible_collections.mailmesh.imap.plugins.filter."


def _registered():
    found = {}
    for path in sorted(FILTER_DIR.glob("*.py")):
        module = importlib.import_module(PACKAGE + path.stem)
        for name, function in module.FilterModule().filters().items():
            assert name not in found, (name, path.name, found.get(name))
            found[name] = function
    return found


REGISTERED = _registered()
SIDECARS = sorted(path.stem for path in FILTER_DIR.glob("*.yml"))


def test_every_filter_has_a_sidecar():
    assert sorted(REGISTERED) == SIDECARS


@pytest.mark.parametrize("name", SIDECARS)
def test_sidecar(name):
    doc = yaml.safe_load((FILTER_DIR / (name + ".yml")).read_text(encoding="utf-8"))
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["version_added"] == "0.1.0"
    assert doc["DOCUMENTATION"]["short_description"].strip()
    assert "_input" in doc["DOCUMENTATION"]["options"]
    assert "mailmesh.imap." + name in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]
    # The positional options are the function's first arguments after the input, in order,
    # and each is documented.
    positional = [p.strip() for p in doc["DOCUMENTATION"].get("positional", "_input").split(",")]
    code = REGISTERED[name].__code__
    arguments = list(code.co_varnames[1:code.co_argcount])
    assert positional[0] == "_input" and positional[1:] == arguments[:len(positional) - 1], (positional, arguments)
    assert set(positional) <= set(doc["DOCUMENTATION"]["options"]), positional
