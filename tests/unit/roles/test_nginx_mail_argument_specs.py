"""roles/nginx_mail: meta/argument_specs.yml documents exactly the variables of
defaults/main.yml with the same literal defaults, every public variable carries the
role's prefix and internal ones the '__' prefix."""

import pathlib

import pytest
import yaml

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "nginx_mail"


def _load(path):
    return yaml.safe_load((ROLE / path).read_text(encoding="utf-8")) or {}


def _options():
    return _load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]


def test_specs_match_defaults():
    defaults = set(_load("defaults/main.yml"))
    specs = set(_options())
    assert defaults == specs, {
        "in defaults only": sorted(defaults - specs),
        "in argument_specs only": sorted(specs - defaults),
    }


@pytest.mark.parametrize("name", sorted(_options()))
def test_spec_defaults_are_the_defaults(name):
    spec = _options()[name]
    if "default" in spec:
        assert _load("defaults/main.yml")[name] == spec["default"], name


def test_public_variables_are_prefixed():
    assert all(name.startswith("nginx_mail_") for name in _load("defaults/main.yml"))


def test_internal_variables_are_prefixed():
    for path in sorted((ROLE / "vars").glob("*.yml")):
        assert all(name.startswith("__nginx_mail_") for name in _load(path.relative_to(ROLE))), path.name


def test_every_spec_has_a_description_and_a_type():
    for name, spec in _options().items():
        assert spec.get("description"), name
        assert spec.get("type"), name
