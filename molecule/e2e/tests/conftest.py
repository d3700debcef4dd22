"""Fixtures of both e2e test modules."""

import mesh_checks
import pytest
from e2e_shape import ALL_HOSTS, GATEWAYS, VAULT_CA


@pytest.fixture(scope="module")
def hosts():
    return {name: mesh_checks.host(name) for name in ALL_HOSTS}


@pytest.fixture(scope="module")
def ca_file(hosts, tmp_path_factory):
    """The Vault CA every host trusts, copied out for this process's TLS clients."""
    return mesh_checks.vault_ca_file(hosts[GATEWAYS[0]], tmp_path_factory, VAULT_CA)
