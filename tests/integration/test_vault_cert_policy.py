"""End to end: a host's policy from vault_cert_policy lets its AppRole sign its own names only."""

import hvac
import hvac.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mailmesh.imap.plugins.filter.vault import vault_cert_policy
from ansible_collections.mailmesh.imap.plugins.module_utils._names import join_names

MOUNT = "t_e2e_pki"
APPROLE = "t_e2e_approle"
HOST = "host1.e2e.example"
ALT = ["mail.e2e.example", "IMAP.e2e.example"]
IPS = ["127.0.0.1"]


def _csr(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _ok(result):
    assert not result.failed, result
    return result


def test_policy_restricts_signing_to_own_names(bao, run_module):
    c = bao.connection
    _ok(run_module("vault_secrets_engine", c(path=MOUNT, engine_type="pki", max_lease_ttl="87600h")))
    _ok(run_module("vault_pki_ca", c(mount_point=MOUNT, common_name="e2e root", ttl="8760h")))
    _ok(run_module("vault_pki_role", c(
        mount_point=MOUNT, name="hosts", allow_any_name=True, enforce_hostnames=True,
        allow_ip_sans=True, server_flag=True, client_flag=True, key_type="ec", key_bits=256,
        ttl="24h", max_ttl="72h", use_csr_common_name=False, use_csr_sans=False)))
    _ok(run_module("vault_auth_method", c(path=APPROLE, method_type="approle")))
    policy = vault_cert_policy(MOUNT, "hosts", HOST, alt_names=ALT, ip_sans=IPS)
    _ok(run_module("vault_policy", c(name="t-e2e-cert-host1", policy=policy)))
    role = _ok(run_module("vault_approle_role", c(
        mount_point=APPROLE, role_name="host1", token_policies=["t-e2e-cert-host1"],
        token_ttl="5m")))
    secret = _ok(run_module("vault_approle_secret_id", c(mount_point=APPROLE, role_name="host1")))

    client = hvac.Client(url=bao.url, token="", verify=bao.ca_cert)
    client.auth.approle.login(role_id=role["role_id"], secret_id=secret["secret_id"],
                              mount_point=APPROLE)
    sign = "/v1/%s/sign/hosts" % MOUNT

    # its own names, exactly as vault_pki_cert sends them: signed
    body = {"csr": _csr(HOST), "common_name": HOST,
            "alt_names": join_names(ALT), "ip_sans": join_names(IPS), "ttl": "1h"}
    cert = client.adapter.post(sign, json=body)["data"]["certificate"]
    cert = x509.load_pem_x509_certificate(cert.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(
        [HOST, "imap.e2e.example", "mail.e2e.example"])

    # another host's name: 403
    with pytest.raises(hvac.exceptions.Forbidden):
        client.adapter.post(sign, json=dict(body, csr=_csr("other.e2e.example"),
                                            common_name="other.e2e.example"))
    # an extra alt name, or names in another order: 403
    with pytest.raises(hvac.exceptions.Forbidden):
        client.adapter.post(sign, json=dict(body, alt_names=join_names(ALT + ["evil.example"])))
    with pytest.raises(hvac.exceptions.Forbidden):
        client.adapter.post(sign, json=dict(body, alt_names="mail.e2e.example,imap.e2e.example"))
    # a parameter the policy does not list: 403
    with pytest.raises(hvac.exceptions.Forbidden):
        client.adapter.post(sign, json=dict(body, format="der"))
    # and nothing else: no issue endpoint, no policy writes
    with pytest.raises(hvac.exceptions.Forbidden):
        client.adapter.post("/v1/%s/issue/hosts" % MOUNT, json={"common_name": HOST})
    # the CA chain is readable
    assert "BEGIN CERTIFICATE" in client.adapter.get("/v1/%s/ca/pem" % MOUNT).text

    # the modules themselves work with AppRole auth, and are refused what the policy denies
    result = run_module("vault_policy", c(auth_method="approle", token=None,
                                          approle_mount_point=APPROLE,
                                          role_id=role["role_id"], secret_id=secret["secret_id"],
                                          name="t-e2e-denied", policy=policy))
    assert result.failed and "permission denied" in result["msg"] and bao.url in result["msg"]
    assert secret["secret_id"] not in result["_stdout"]
