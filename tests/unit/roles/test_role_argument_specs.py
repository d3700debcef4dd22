"""roles/vault_cert and roles/dovecot: meta/argument_specs.yml documents exactly the
variables of defaults/main.yml (plus required variables, which have no default), every
public variable carries the role's prefix, internal ones the '__' prefix."""

import pathlib

import pytest
import yaml

ROLES_DIR = pathlib.Path(__file__).resolve().parents[3] / "roles"
ROLES = ["vault_cert", "dovecot"]


def _load(role, path):
    return yaml.safe_load((ROLES_DIR / role / path).read_text(encoding="utf-8")) or {}


def _options(role):
    return _load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]


@pytest.mark.parametrize("role", ROLES)
def test_specs_match_defaults(role):
    defaults = set(_load(role, "defaults/main.yml"))
    options = _options(role)
    specs = {name for name, spec in options.items() if not spec.get("required")}
    assert defaults == specs, {
        "in defaults only": sorted(defaults - specs),
        "in argument_specs only": sorted(specs - defaults),
    }


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_are_prefixed(role):
    assert all(name.startswith(role + "_") for name in _options(role))


@pytest.mark.parametrize("role", ROLES)
def test_internal_variables_are_prefixed(role):
    for path in sorted((ROLES_DIR / role / "vars").glob("*.yml")):
        names = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        assert all(name.startswith("__%s_" % role) for name in names), path.name


@pytest.mark.parametrize("role", ROLES)
def test_every_spec_has_a_description_and_a_type(role):
    for name, spec in _options(role).items():
        assert spec.get("description"), name
        assert spec.get("type"), name


def test_password_hash_is_no_log():
    user = _options("dovecot")["dovecot_users"]["options"]
    assert user["password_hash"].get("no_log") is True


@pytest.mark.parametrize("value, accepted", [
    ("{SHA512-CRYPT}$6$HYY.Ioa0ivSh/PVM$i4kNL.gRO3LwMQlS1HCv7UuOOc1iEJEd9hHJdRuur8mci", True),
    ("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", True),
    ("{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuu", True),
    ("hunter2", False),
    ("{PLAIN}hunter2", False),
    ("{SHA512-CRYPT}hunter2", False),
    ("{SHA512-CRYPT}$6$salt$hash:extra", False),
])
def test_dovecot_password_hash_regex(value, accepted):
    import re  # pylint: disable=import-outside-toplevel

    regex = _load("dovecot", "vars/main.yml")["__dovecot_password_hash_regex"]
    # Jinja's `match` test anchors at the start like re.match.
    assert bool(re.match(regex, value)) is accepted
