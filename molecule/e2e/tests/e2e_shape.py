"""The e2e scenario's shape, as test_e2e.py and test_faults.py both see it: its hosts,
the lab's users and their stores, and where the Vault tier keeps what the tests read."""

import os
import pathlib

VAULT = "e2e-vault1"
VAULT_UNIT = "openbao"  # roles/vault_server/vars/main.yml, flavor openbao
STORES = ("e2e-store1", "e2e-store2")
GATEWAYS = ("e2e-gw1", "e2e-gw2")
EDGES = ("e2e-edge1", "e2e-edge2")
ENVOY_HOSTS = STORES + GATEWAYS + EDGES
ALL_HOSTS = (VAULT,) + ENVOY_HOSTS
# The lab's users (inventories/lab/group_vars/all.yml) and their stores (host_vars/).
USERS = {"alice@example.test": "alice-secret", "bob@example.test": "bob-secret"}
HOME_STORE = {"alice@example.test": "e2e-store1", "bob@example.test": "e2e-store2"}
VMAIL = "/var/vmail"
VAULT_CA = "/etc/mailmesh/vault/ca.pem"
IMAPS_PORT = 993
# The renewal agent (roles/vault_cert).
AGENT_UNIT = "mailmesh-cert-renew"

SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The Vault tier's init file (unseal keys, root token) for this scenario (host_vars/e2e-vault1.yml).
INIT_FILE = pathlib.Path(SCENARIO_DIR).parents[1] / ".build" / "molecule" / "e2e" / ("%s-init.json" % VAULT)
