"""vault_pki_ca against the shared OpenBao dev server: a root and an intermediate."""

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding


def _mount(bao, path):
    bao.client().adapter.post("/v1/sys/mounts/" + path,
                              json={"type": "pki", "config": {"max_lease_ttl": "87600h"}})


def _serial(pem):
    cert = x509.load_pem_x509_certificate(pem.encode())
    raw = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    return ":".join("%02x" % b for b in raw)


def test_pki_ca_root_and_intermediate(bao, run_module):
    _mount(bao, "t_ca_root")
    _mount(bao, "t_ca_int")
    root_args = bao.connection(mount_point="t_ca_root", ca_type="root",
                               common_name="t root CA", ttl="87600h")

    result = run_module("vault_pki_ca", root_args, check=True)
    assert not result.failed, result
    assert result.changed and result["certificate"] is None
    assert bao.client().adapter.get("/v1/t_ca_root/ca/pem").text == ""

    result = run_module("vault_pki_ca", root_args)
    assert not result.failed, result
    assert result.changed
    root_pem = result["certificate"]
    root = x509.load_pem_x509_certificate(root_pem.encode())
    assert root.subject.rfc4514_string() == "CN=t root CA"
    assert result["serial_number"] == _serial(root_pem)

    result = run_module("vault_pki_ca", root_args)
    assert not result.failed and not result.changed, result
    assert result["certificate"] == root_pem
    assert not run_module("vault_pki_ca", root_args, check=True).changed

    int_args = bao.connection(
        mount_point="t_ca_int", ca_type="intermediate", issuer_mount_point="t_ca_root",
        common_name="t issuing CA", ttl="43800h",
        issuing_certificates=[bao.url + "/v1/t_ca_int/ca"],
        crl_distribution_points=[bao.url + "/v1/t_ca_int/crl"],
    )
    result = run_module("vault_pki_ca", int_args, check=True)
    assert result.changed and result["certificate"] is None
    result = run_module("vault_pki_ca", int_args)
    assert not result.failed, result
    assert result.changed
    inter = x509.load_pem_x509_certificate(result["certificate"].encode())
    # (verify_directly_issued_by needs cryptography 40; Debian 12 has 38)
    assert inter.issuer == root.subject
    root.public_key().verify(inter.signature, inter.tbs_certificate_bytes,
                             ec.ECDSA(inter.signature_hash_algorithm))
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    urls = bao.client().adapter.get("/v1/t_ca_int/config/urls")["data"]
    assert urls["issuing_certificates"] == [bao.url + "/v1/t_ca_int/ca"]
    # the imported chain lets the mount hand out intermediate + root
    chain = bao.client().adapter.get("/v1/t_ca_int/cert/ca_chain")
    chain = chain["data"]["ca_chain"] if isinstance(chain, dict) else chain.text
    assert root_pem.strip().splitlines()[1] in chain

    result = run_module("vault_pki_ca", int_args)
    assert not result.failed and not result.changed, result

    # URLs are compared and updated on their own; the CA stays
    new_urls = dict(int_args, crl_distribution_points=["http://crl.example/t.crl"])
    result = run_module("vault_pki_ca", new_urls, check=True, diff=True)
    assert result.changed
    assert result["diff"]["before"]["crl_distribution_points"] == [bao.url + "/v1/t_ca_int/crl"]
    assert result["diff"]["after"]["crl_distribution_points"] == ["http://crl.example/t.crl"]
    result = run_module("vault_pki_ca", new_urls)
    assert result.changed
    assert result["serial_number"] == _serial(inter.public_bytes(Encoding.PEM).decode())
    assert not run_module("vault_pki_ca", new_urls).changed


def test_pki_ca_needs_a_mount(bao, run_module):
    result = run_module("vault_pki_ca", bao.connection(mount_point="t_ca_nomount", common_name="x"))
    assert result.failed
    assert "t_ca_nomount" in result["msg"] and bao.url in result["msg"]
