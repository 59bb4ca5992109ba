"""A private CA and the broker's server certificate, with the ``cryptography`` package.

Keys are EC P-256. A server certificate is kept on a re-run while it is signed by the CA, names
every requested host, matches its key and has more than ``RENEW_BEFORE`` left; otherwise it is
issued anew (the CA, which clients trust, is kept).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
CA_NAME = "aurora suite broker CA"

SanName = x509.DNSName | x509.IPAddress


@dataclass(frozen=True, slots=True)
class KeyAndCert:
    """A private key and its certificate, both as PEM bytes."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC private key")
        return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def san_entry(host: str) -> SanName:
    """An IP literal becomes an IP SAN, anything else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def create_ca(common_name: str = CA_NAME) -> KeyAndCert:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_server(ca: KeyAndCert, hosts: Sequence[str]) -> KeyAndCert:
    """A server certificate for ``hosts`` (the first is the common name), signed by ``ca``."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name")
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ca.key
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([san_entry(h) for h in hosts]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def load(key_pem: bytes, cert_pem: bytes) -> KeyAndCert | None:
    """The pair if both parse and the key belongs to the certificate, else None."""
    pair = KeyAndCert(key_pem, cert_pem)
    try:
        if pair.key.public_key() != pair.cert.public_key():
            return None
    except ValueError:
        return None
    return pair


def ca_is_usable(ca: KeyAndCert) -> bool:
    """A CA certificate that is still valid for more than ``RENEW_BEFORE``."""
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    return constraints.ca and ca.cert.not_valid_after_utc - _now() > RENEW_BEFORE


def server_names(cert: x509.Certificate) -> set[str]:
    """The host names and IP addresses a certificate is valid for, as strings."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in sans.get_values_for_type(x509.DNSName)} | {
        str(v) for v in sans.get_values_for_type(x509.IPAddress)
    }


def why_reissue(server: KeyAndCert, ca: KeyAndCert, hosts: Iterable[str]) -> str | None:
    """Why ``server`` cannot be kept for ``hosts`` (a short reason), or None if it can."""
    cert = server.cert
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by the CA"
    missing = set(hosts) - server_names(cert)  # IP literals as ipaddress prints them
    if missing:
        return "does not name " + ", ".join(sorted(missing))
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return "expires soon"
    return None


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 fingerprint as colon-separated hex (what browsers and openssl show)."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)
