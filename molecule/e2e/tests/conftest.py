"""Fixtures of both e2e test modules, and the scenario's shape (e2e_shape.py, beside
this file) importable by them: the verifier runs pytest in importlib mode
(pytest.ini), which puts no test directory on sys.path."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import mesh_checks  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position
from e2e_shape import ALL_HOSTS, GATEWAYS, VAULT_CA  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="module")
def hosts():
    return {name: mesh_checks.host(name) for name in ALL_HOSTS}


@pytest.fixture(scope="module")
def ca_file(hosts, tmp_path_factory):
    """The Vault CA every host trusts, copied out for this process's TLS clients."""
    return mesh_checks.vault_ca_file(hosts[GATEWAYS[0]], tmp_path_factory, VAULT_CA)
