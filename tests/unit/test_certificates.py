"""The webhook's own certificates: made, kept while good, renewed in time
by the same CA (so the caBundle the API server trusts stays valid)."""

from __future__ import annotations

import ssl
import tempfile
from datetime import UTC, datetime, timedelta

from cryptography import x509

from sluice.certificates import RENEW_BEFORE, SERVING_LIFETIME, Bundle, issue, renewed

NOW = datetime(2026, 11, 24, tzinfo=UTC)
HOSTS = ("sluice-webhook", "sluice-webhook.sluice-system.svc", "127.0.0.1")


def test_a_new_chain_serves_tls_for_every_name_and_round_trips_through_a_secret() -> None:
    bundle = issue(HOSTS, NOW)
    cert = x509.load_pem_x509_certificate(bundle.cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n) for n in names.get_values_for_type(x509.DNSName)} == set(HOSTS[:2])
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert Bundle.from_secret_data(bundle.secret_data()) == bundle
    assert Bundle.from_secret_data({"ca.crt": "x"}) is None
    # what ssl (the server and the API server's client) makes of it
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile() as certfile, tempfile.NamedTemporaryFile() as keyfile:
        certfile.write(bundle.cert), certfile.flush()
        keyfile.write(bundle.key), keyfile.flush()
        server.load_cert_chain(certfile.name, keyfile.name)
    clients = ssl.create_default_context(cadata=bundle.ca_cert.decode())
    assert clients.cert_store_stats()["x509_ca"] == 1


def test_a_good_chain_is_kept_and_a_due_one_renewed_by_the_same_ca() -> None:
    bundle = issue(HOSTS, NOW)
    assert renewed(bundle, HOSTS, NOW + timedelta(days=100)) is None
    due = NOW + SERVING_LIFETIME - RENEW_BEFORE + timedelta(hours=1)
    fresh = renewed(bundle, HOSTS, due)
    assert fresh is not None and fresh.ca_cert == bundle.ca_cert and fresh.cert != bundle.cert
    assert x509.load_pem_x509_certificate(fresh.cert).not_valid_after_utc > due + timedelta(days=300)


def test_a_new_name_renews_the_serving_certificate_and_garbage_makes_a_new_ca() -> None:
    bundle = issue(HOSTS[:1], NOW)
    fresh = renewed(bundle, HOSTS, NOW)
    assert fresh is not None and fresh.ca_cert == bundle.ca_cert
    broken = Bundle(b"not a certificate", bundle.ca_key, bundle.cert, bundle.key)
    replaced = renewed(broken, HOSTS, NOW)
    assert replaced is not None and replaced.ca_cert != bundle.ca_cert
    assert renewed(None, HOSTS, NOW) is not None


def test_a_broken_or_mismatched_serving_certificate_is_reissued_by_the_same_ca() -> None:
    bundle = issue(HOSTS, NOW)
    garbage = Bundle(bundle.ca_cert, bundle.ca_key, b"garbage", bundle.key)
    fixed = renewed(garbage, HOSTS, NOW)
    assert fixed is not None and fixed.ca_cert == bundle.ca_cert and fixed.cert != b"garbage"
    other_key = issue(HOSTS, NOW).key
    mismatched = Bundle(bundle.ca_cert, bundle.ca_key, bundle.cert, other_key)
    fixed = renewed(mismatched, HOSTS, NOW)
    assert fixed is not None and fixed.ca_cert == bundle.ca_cert
    assert renewed(fixed, HOSTS, NOW) is None  # and then it holds
