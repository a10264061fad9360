"""The admission webhook's certificates, made by the operator itself (no
cert-manager): a CA whose certificate is the webhook configuration's
``caBundle``, and a serving certificate it signs for the webhook Service's
names. Kept in a Secret so every replica serves the same chain.

Lifetimes: the CA ten years, the serving certificate one year, renewed (by
the same CA, so the caBundle stays) when less than 30 days are left or the
names it must cover changed. No I/O here: the webhook module stores them.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_LIFETIME = timedelta(days=3650)
SERVING_LIFETIME = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# Clocks of the API server and of the operator may differ a little.
BACKDATE = timedelta(minutes=5)
SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")


@dataclass(frozen=True)
class Bundle:
    """PEM-encoded CA and serving certificate with their keys."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    def secret_data(self) -> dict[str, str]:
        values = (self.ca_cert, self.ca_key, self.cert, self.key)
        return {
            name: base64.b64encode(value).decode() for name, value in zip(SECRET_KEYS, values, strict=True)
        }

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None) -> Bundle | None:
        if not data or any(name not in data for name in SECRET_KEYS):
            return None
        try:
            ca_cert, ca_key, cert, key = (base64.b64decode(data[name]) for name in SECRET_KEYS)
        except ValueError:
            return None
        return cls(ca_cert, ca_key, cert, key)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _serving(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: Sequence[str], now: datetime
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVING_LIFETIME)
        .add_extension(_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(hosts: Sequence[str], now: datetime) -> Bundle:
    """A new CA and a serving certificate for ``hosts`` (names or IPs)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sluice-webhook-ca"))
        .issuer_name(_name("sluice-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
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
        .sign(ca_key, hashes.SHA256())
    )
    cert, key = _serving(ca_cert, ca_key, hosts, now)
    return Bundle(ca_cert.public_bytes(serialization.Encoding.PEM), _pem_key(ca_key), cert, key)


def _covers(cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(n) for n in names.get_values_for_type(x509.DNSName)}
    have |= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= have


def _serving_ok(bundle: Bundle, ca_cert: x509.Certificate, hosts: Sequence[str], now: datetime) -> bool:
    """The serving certificate parses, is the CA's, covers ``hosts``, is not
    due, and its key is the one stored beside it.
    """
    try:
        cert = x509.load_pem_x509_certificate(bundle.cert)
        key = serialization.load_pem_private_key(bundle.key, password=None)
    except ValueError:
        return False
    return (
        cert.not_valid_after_utc - now >= RENEW_BEFORE
        and _covers(cert, hosts)
        and cert.issuer == ca_cert.subject
        and key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def renewed(bundle: Bundle | None, hosts: Sequence[str], now: datetime) -> Bundle | None:
    """The bundle to store instead of ``bundle``, or None if it still serves:
    a new CA when there is none usable, else a new serving certificate from
    the same CA (so the caBundle stays) when the current one is due, misses
    a name, or does not parse or match its key.
    """
    try:
        if bundle is None:
            raise ValueError("no bundle")
        ca_cert = x509.load_pem_x509_certificate(bundle.ca_cert)
        ca_key = serialization.load_pem_private_key(bundle.ca_key, password=None)
        if (
            not isinstance(ca_key, ec.EllipticCurvePrivateKey)
            or ca_cert.not_valid_after_utc - now < RENEW_BEFORE
        ):
            raise ValueError("the CA is not usable")
    except ValueError:
        return issue(hosts, now)
    if _serving_ok(bundle, ca_cert, hosts, now):
        return None
    serving, key = _serving(ca_cert, ca_key, hosts, now)
    return Bundle(bundle.ca_cert, bundle.ca_key, serving, key)
