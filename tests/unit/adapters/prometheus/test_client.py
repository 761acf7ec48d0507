"""The Prometheus HTTP client against a fake transport (no server)."""

from __future__ import annotations

import base64
import datetime
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scheduler_extender.adapters.prometheus.client import (
    ClientOptions,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailableError,
    tls_context,
)

Handler = Callable[[httpx.Request], httpx.Response]


def ok_matrix(request: httpx.Request) -> httpx.Response:
    """A range answer with one value per grid point of the request, value = timestamp."""
    start = float(request.url.params["start"])
    end = float(request.url.params["end"])
    step = float(request.url.params["step"])
    values = []
    t = start
    while t <= end + 1e-9:
        values.append([t, str(t)])
        t += step
    body = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {"agent": "a"}, "values": values}]},
    }
    return httpx.Response(200, json=body)


class Recorder:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def client(self, **options: Any) -> PrometheusClient:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.handler(request)

        return PrometheusClient(
            ClientOptions(url="http://prom.test:9090/prefix/", **options),
            transport=httpx.MockTransport(handle),
            sleep=self.sleeps.append,
        )


def test_a_range_query_asks_for_the_grid_and_returns_the_series() -> None:
    recorder = Recorder(ok_matrix)
    [series] = recorder.client().query_range("up", 0.0, 600.0, 60.0)
    assert series.timestamps.tolist() == [60.0 * i for i in range(11)]
    [request] = recorder.requests
    assert request.url.path == "/prefix/api/v1/query_range"
    assert dict(request.url.params) == {"query": "up", "start": "0", "end": "600", "step": "60"}


def test_long_ranges_are_paged_and_merged_without_duplicates() -> None:
    recorder = Recorder(ok_matrix)
    [series] = recorder.client(max_points=100).query_range("up", 0.0, 60.0 * 250, 60.0)
    assert len(recorder.requests) == 3  # 251 points in pages of 100
    assert series.timestamps.tolist() == [60.0 * i for i in range(251)]
    assert series.values.tolist() == series.timestamps.tolist()
    pages = [(r.url.params["start"], r.url.params["end"]) for r in recorder.requests]
    assert pages == [("0", "5940"), ("6000", "11940"), ("12000", "15000")]


def test_server_errors_are_retried_with_growing_backoff() -> None:
    answers = iter([httpx.Response(503, text="busy"), httpx.Response(429), None])

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer if answer is not None else ok_matrix(request)

    recorder = Recorder(flaky)
    recorder.client(retries=2, backoff=1.0).query_range("up", 0.0, 60.0, 60.0)
    assert len(recorder.requests) == 3
    assert len(recorder.sleeps) == 2
    assert 0.5 <= recorder.sleeps[0] <= 1.0  # jittered between half and all of the delay
    assert 1.0 <= recorder.sleeps[1] <= 2.0


def test_an_unreachable_prometheus_fails_after_the_retries() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    recorder = Recorder(down)
    with pytest.raises(PrometheusUnavailableError, match=r"3 attempt.*refused"):
        recorder.client(retries=2).query("up")
    assert len(recorder.requests) == 3


def test_a_bad_query_is_not_retried() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
        return httpx.Response(400, json=body)

    recorder = Recorder(bad)
    with pytest.raises(PrometheusQueryError, match=r"400.*parse error"):
        recorder.client(retries=3).query("up{")
    assert len(recorder.requests) == 1


def test_a_body_of_the_wrong_kind_is_a_query_error() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, json={"status": "success", "data": {}}))
    with pytest.raises(PrometheusQueryError, match=r"data\.result"):
        recorder.client().query("up")
    recorder = Recorder(lambda r: httpx.Response(200, text="<html>"))
    with pytest.raises(PrometheusQueryError, match="not JSON"):
        recorder.client().query("up")


def vector(request: httpx.Request) -> httpx.Response:
    body = {"status": "success", "data": {"resultType": "vector", "result": []}}
    return httpx.Response(200, json=body)


def test_basic_auth_and_the_instant_query_time() -> None:
    recorder = Recorder(vector)
    recorder.client(username="u", password="p").query("up", at=1700000000.5)
    [request] = recorder.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert request.url.params["time"] == "1700000000.5"


def test_the_bearer_token_file_is_reread_for_every_request(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    recorder = Recorder(vector)
    client = recorder.client(bearer_token_file=token)
    client.query("up")
    token.write_text("second")
    client.query("up")
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        "Bearer first",
        "Bearer second",
    ]
    token.unlink()
    with pytest.raises(PrometheusQueryError, match="token file"):
        client.query("up")


def test_tls_options_build_the_verification_context(tmp_path: Path) -> None:
    assert tls_context(ClientOptions(url="https://p")) is True
    assert tls_context(ClientOptions(url="https://p", insecure_skip_verify=True)) is False
    ca = tmp_path / "ca.pem"
    ca.write_text(_self_signed())
    context = tls_context(ClientOptions(url="https://p", ca_file=ca))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "test-ca"),),)


def _self_signed() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
