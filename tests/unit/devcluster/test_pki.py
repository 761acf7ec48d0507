from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scheduler_extender.devcluster.pki import ADMIN_GROUP, create_pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_chain_to_the_ca_with_the_right_identities(tmp_path: Path) -> None:
    pki = create_pki(tmp_path / "pki")
    ca, serving, admin = load(pki.ca_cert), load(pki.serving_cert), load(pki.admin_cert)

    for leaf in (serving, admin):
        leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.IPv4Address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )

    groups = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == [ADMIN_GROUP] == ["system:masters"]
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )


def test_private_keys_are_private_and_match(tmp_path: Path) -> None:
    pki = create_pki(tmp_path)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    for key_path, cert_path in (
        (pki.admin_key, pki.admin_cert),
        (pki.serving_key, pki.serving_cert),
    ):
        assert key_path.stat().st_mode & 0o077 == 0
        key = load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key() == load(cert_path).public_key()
    assert pki.service_account_key.stat().st_mode & 0o077 == 0
