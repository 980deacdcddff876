"""The ``ca_bundle`` option: the hook trusts a named CA for one connection, over real https.

The simulator serves https with a throwaway CA (``--tls-dir``, as in the compose demo); the
hook reaches it only when the connection names that CA, and plain http stays refused for
every host that is not loopback.
"""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from zuora.api.credentials import airflow_connection
from zuora.api.errors import ZuoraConfigError
from zuora.api.hook import ZuoraHook
from zuora_simulator.client import running_simulator
from zuora_simulator.demo import demo_tenants
from zuora_simulator.tls import write_certificates

ACME = next(t for t in demo_tenants() if t["tenant_id"] == "acme")


@pytest.fixture(scope="module")
def tls_simulator(tmp_path_factory):
    tls_dir = tmp_path_factory.mktemp("tls")
    with running_simulator(demo=True, tls_dir=tls_dir) as sim:
        yield sim, tls_dir / "ca.pem"


@pytest.fixture
def connect(monkeypatch):
    # only the connection decides what is trusted here
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)

    def make(base_url: str, **extra) -> ZuoraHook:
        conn_id = f"zuora_tls_{len(extra)}_{abs(hash(json.dumps(extra, sort_keys=True)))}"
        definition = airflow_connection(base_url, ACME["client_id"], ACME["client_secret"], **extra)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(definition))
        return ZuoraHook(conn_id)

    return make


CUSTOM = {"allow_custom_host": True, "environment": "sandbox", "max_attempts": 1}


def test_the_named_ca_lets_the_hook_in(tls_simulator, connect):
    sim, ca = tls_simulator
    assert sim.base_url.startswith("https://")
    hook = connect(sim.base_url, ca_bundle=str(ca), **CUSTOM)
    assert [item["id"] for item in hook.list_workflows()], "no workflows listed over https"
    assert len(list(hook.list_workflows())) == ACME["workflows"]


def test_without_the_ca_the_certificate_is_refused(tls_simulator, connect):
    sim, _ = tls_simulator
    ok, message = connect(sim.base_url, **CUSTOM).test_connection()
    assert not ok and "SSLError" in message


def test_another_ca_is_refused(tls_simulator, connect, tmp_path):
    sim, _ = tls_simulator
    other_ca, _, _ = write_certificates(tmp_path, ["localhost"])
    ok, message = connect(sim.base_url, ca_bundle=str(other_ca), **CUSTOM).test_connection()
    assert not ok and "SSLError" in message


def test_plain_http_to_a_named_host_stays_refused(tls_simulator, connect):
    _, ca = tls_simulator
    hook = connect("http://zuora-simulator:8090", ca_bundle=str(ca), allow_insecure_http=True, **CUSTOM)
    with pytest.raises(ZuoraConfigError, match="must use https"):
        hook.credentials  # noqa: B018


def test_a_missing_bundle_is_named(connect, tmp_path):
    hook = connect("https://zuora-simulator:8090", ca_bundle=str(tmp_path / "nope.pem"), **CUSTOM)
    with pytest.raises(ZuoraConfigError, match="'ca_bundle'.*not a file"):
        hook.credentials  # noqa: B018


def test_the_certificate_names_the_service_and_the_ca_key_is_not_kept(tmp_path):
    ca, cert, key = write_certificates(tmp_path, ["zuora-simulator"])
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"zuora-simulator", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert server.issuer == x509.load_pem_x509_certificate(ca.read_bytes()).subject
    assert key.stat().st_mode & 0o077 == 0, "the server key is readable by others"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]
