"""roles/vault_server: meta/argument_specs.yml documents exactly the variables of
defaults/main.yml, and every public variable carries the role's prefix."""

import pathlib

import yaml

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "vault_server"


def _load(path):
    return yaml.safe_load((ROLE / path).read_text(encoding="utf-8"))


def test_specs_match_defaults():
    defaults = set(_load("defaults/main.yml"))
    specs = set(_load("meta/argument_specs.yml")["argument_specs"]["main"]["options"])
    assert defaults == specs, {
        "in defaults only": sorted(defaults - specs),
        "in argument_specs only": sorted(specs - defaults),
    }


def test_public_variables_are_prefixed():
    assert all(name.startswith("vault_server_") for name in _load("defaults/main.yml"))


def test_internal_variables_are_prefixed():
    for path in sorted((ROLE / "vars").glob("*.yml")):
        names = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        assert all(name.startswith("__vault_server_") for name in names), path.name


def test_every_spec_has_a_description_and_a_type():
    options = _load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, spec in options.items():
        assert spec.get("description"), name
        assert spec.get("type"), name
