"""Issue 9.10: the alert webhook takes Azure Monitor's Secure Webhook token (Entra ID) on top of
its function key, and an alert's links reach a person only when they are https.

Tokens are minted here with a fresh RSA key; the key set is served over loopback HTTP the way
Entra ID serves it (`/discovery/v2.0/keys`), and pitcrew fetches it through the JWKS URL
override. Storage is Azurite, notifications go to a real webhook receiver."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pitcrew.auth import reset_alert_token_cache
from pitcrew.intake import api
from tests.conftest import SAMPLES
from tests.receiver import Receiver

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP_ID_URI = "api://pitcrew-alerts"
APP_ID = "3c1a7c0e-0000-4000-8000-00000000a1e7"
ACTION_GROUPS_APP = "461e8683-5575-4561-ac7f-899cc907d62a"
ISSUER_V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ISSUER_V1 = f"https://sts.windows.net/{TENANT}/"


class KeySet:
    """Entra's key set endpoint on loopback: serves the public keys it is given, counts GETs,
    and can be told to fail."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200
        self.fetches = 0
        keyset = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                keyset.fetches += 1
                body = json.dumps({"keys": keyset.keys}).encode()
                self.send_response(keyset.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/{TENANT}/discovery/v2.0/keys"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Signer:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig"}

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": APP_ID_URI,
            "iss": ISSUER_V2,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "appid": ACTION_GROUPS_APP,
            "oid": "0b0b0b0b-0000-4000-8000-000000000001",
            "tid": TENANT,
            "roles": ["ActionGroupsSecureWebhook"],
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture
def keyset() -> Iterator[KeySet]:
    k = KeySet()
    yield k
    k.close()


@pytest.fixture
def signer(keyset: KeySet) -> Signer:
    s = Signer("key-1")
    keyset.keys.append(s.public_jwk())
    return s


@pytest.fixture
def secure(
    pitcrew_env: object, keyset: KeySet, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_AUDIENCE", f"{APP_ID_URI}, {APP_ID}")
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_TENANT", TENANT)
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_JWKS_URL", keyset.url)
    monkeypatch.delenv("PITCREW_ALERT_TOKEN_REQUIRED", raising=False)
    monkeypatch.delenv("PITCREW_ALERT_TOKEN_ROLE", raising=False)
    reset_alert_token_cache()
    yield
    reset_alert_token_cache()


def alert_body(alert_id: str = "a1", **custom: Any) -> bytes:
    payload = json.loads((SAMPLES / "common-alert-metric.json").read_text())
    essentials = payload["data"]["essentials"]
    essentials["alertId"] = essentials["alertId"].rsplit("/", 1)[0] + "/" + alert_id
    if custom:
        payload["data"]["customProperties"] = custom
    return json.dumps(payload).encode()


def post(token: str | None, body: bytes | None = None, scheme: str = "Bearer") -> api.HttpResult:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return api.receive_alert(headers, body or alert_body())


@pytest.mark.usefixtures("secure")
def test_valid_token_is_accepted(signer: Signer, receiver: Receiver) -> None:
    result = post(signer.token())
    assert result.status == 200, result.body
    assert result.body["outcome"] == "handled"
    assert len(receiver.received) == 1


@pytest.mark.usefixtures("secure")
@pytest.mark.parametrize(
    "claims",
    [
        {"aud": APP_ID},  # the app id is the second audience in the setting
        {"iss": ISSUER_V1},  # v1.0 tokens
        {"roles": ["Other", "ActionGroupsSecureWebhook"]},
        {"nbf": int(time.time()) + 30},  # within the clock leeway
    ],
    ids=["app-id-audience", "v1-issuer", "several-roles", "nbf-within-leeway"],
)
def test_every_documented_token_shape_is_accepted(
    signer: Signer, claims: dict[str, Any]
) -> None:
    assert post(signer.token(**claims)).status == 200


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'key-1'})}.{part(claims)}."


@pytest.mark.usefixtures("secure")
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: None, "bearer token from Entra ID"),
        (lambda s: "", "Bearer <token>"),
        (lambda s: s.token(aud="api://someone-else"), "audience"),
        (lambda s: s.token(iss="https://login.microsoftonline.com/other-tenant/v2.0"), "issuer"),
        (lambda s: s.token(iss="https://sts.windows.net/other-tenant/"), "issuer"),
        (lambda s: s.token(roles=["Reader"]), "app role ActionGroupsSecureWebhook"),
        (lambda s: s.token(roles=None), "app role ActionGroupsSecureWebhook"),
        (lambda s: s.token(exp=int(time.time()) - 600), "expired"),
        (lambda s: s.token(exp=None), "'exp'"),
        (lambda s: s.token(nbf=int(time.time()) + 900), "not valid yet"),
        (lambda s: _unsigned({"aud": APP_ID_URI, "iss": ISSUER_V2,
                              "exp": int(time.time()) + 600,
                              "roles": ["ActionGroupsSecureWebhook"]}), "RS256 only"),
        (lambda s: jwt.encode({"aud": APP_ID_URI, "iss": ISSUER_V2, "exp": int(time.time()) + 600,
                               "roles": ["ActionGroupsSecureWebhook"]},
                              "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256",
                              headers={"kid": "key-1"}), "RS256 only"),
        (lambda s: Signer("key-1").token(), "signature"),
        (lambda s: Signer("key-unknown").token(), "does not publish"),
        (lambda s: "not.a.jwt", "not a JWT"),
        (lambda s: s.token() + "x" * 9000, "longer than"),
    ],
    ids=["absent", "empty", "wrong-audience", "other-tenant-v2", "other-tenant-v1",
         "wrong-role", "no-roles", "expired", "no-exp", "not-yet-valid", "alg-none", "hs256",
         "forged-signature", "unknown-kid", "garbage", "oversize"],
)
def test_bad_tokens_are_401_with_a_reason(
    signer: Signer, receiver: Receiver, make: Any, reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make(signer)
    with caplog.at_level(logging.DEBUG):
        result = post(token)
    assert result.status == 401, result.body
    assert result.body["error"] == "unauthorized"
    assert reason in result.body["message"]
    assert result.headers["WWW-Authenticate"].startswith("Bearer")
    assert receiver.received == []
    assert any(
        r.levelno == logging.WARNING and r.getMessage().startswith("pitcrew.alerts.refused")
        for r in caplog.records
    )
    if token:
        assert token not in json.dumps(result.body)
        assert token[:40] not in caplog.text


@pytest.mark.usefixtures("secure")
def test_not_a_bearer_scheme_is_401(signer: Signer) -> None:
    result = post(signer.token(), scheme="Basic")
    assert result.status == 401 and "Bearer <token>" in result.body["message"]


@pytest.mark.usefixtures("secure")
def test_unreachable_key_set_is_503_retry_later(keyset: KeySet, signer: Signer) -> None:
    keyset.status = 500
    result = post(signer.token())
    assert result.status == 503, result.body
    assert result.body["error"] == "retry_later"
    assert result.headers["Retry-After"]
    keyset.close()  # nothing listens any more
    result = post(signer.token())
    assert result.status == 503 and result.body["error"] == "retry_later"


@pytest.mark.usefixtures("secure")
def test_key_set_is_fetched_once_and_refetched_for_a_rolled_key(
    keyset: KeySet, signer: Signer
) -> None:
    for n in range(3):
        assert post(signer.token(), alert_body(f"cached-{n}")).status == 200
    assert keyset.fetches == 1
    rolled = Signer("key-2")
    keyset.keys.append(rolled.public_jwk())
    # Inside the refresh interval an unknown key is refused without hammering Entra...
    import pitcrew.auth as auth

    assert post(rolled.token(), alert_body("rolled-early")).status == 401
    assert keyset.fetches == 1
    # ...and after it the key set is fetched again and the new key is accepted.
    auth_state = auth._JWKS._sets[keyset.url]
    auth._JWKS._sets[keyset.url] = (auth_state[0] - auth.JWKS_REFRESH_MIN_SECONDS, auth_state[1])
    assert post(rolled.token(), alert_body("rolled")).status == 200
    assert keyset.fetches == 2


def test_half_configured_app_refuses_with_503(
    pitcrew_env: object, monkeypatch: pytest.MonkeyPatch, signer: Signer
) -> None:
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_AUDIENCE", APP_ID_URI)
    monkeypatch.delenv("PITCREW_ALERT_TOKEN_TENANT", raising=False)
    result = post(signer.token())
    assert result.status == 503 and result.body["error"] == "policy_invalid"
    assert any("PITCREW_ALERT_TOKEN_TENANT" in p for p in result.body["problems"])
    monkeypatch.delenv("PITCREW_ALERT_TOKEN_AUDIENCE")
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_REQUIRED", "true")
    result = post(None)
    assert result.status == 503
    assert any("PITCREW_ALERT_TOKEN_AUDIENCE" in p for p in result.body["problems"])


def test_without_token_settings_the_function_key_alone_guards(
    pitcrew_env: object, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    for name in ("AUDIENCE", "TENANT", "REQUIRED", "JWKS_URL"):
        monkeypatch.delenv(f"PITCREW_ALERT_TOKEN_{name}", raising=False)
    assert post(None).status == 200
    assert len(receiver.received) == 1


@pytest.mark.usefixtures("secure")
def test_optional_token_still_refuses_a_bad_one(
    monkeypatch: pytest.MonkeyPatch, signer: Signer
) -> None:
    """PITCREW_ALERT_TOKEN_REQUIRED=false (switching an action group over): no token passes on
    the function key, but a token that is sent must be valid."""
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_REQUIRED", "false")
    assert post(None, alert_body("optional-none")).status == 200
    assert post(signer.token(aud="api://other"), alert_body("optional-bad")).status == 401
    assert post(signer.token(), alert_body("optional-good")).status == 200


@pytest.mark.usefixtures("secure")
def test_custom_role_setting(monkeypatch: pytest.MonkeyPatch, signer: Signer) -> None:
    monkeypatch.setenv("PITCREW_ALERT_TOKEN_ROLE", "Alerts.Send")
    assert post(signer.token()).status == 401
    assert post(signer.token(roles=["Alerts.Send"])).status == 200


# ------------------------------------------------------------------ links in notifications


@pytest.mark.usefixtures("pitcrew_env")
@pytest.mark.parametrize(
    "runbook",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://runbooks.contoso.com/dlq",
        "//evil.example/x",
        "docs/runbooks/dead-letters.md",
        "https://user:pass@evil.example/",
        "https://runbooks.contoso.com/a\nb",
    ],
)
def test_only_https_links_from_an_alert_reach_a_person(receiver: Receiver, runbook: str) -> None:
    payload = json.loads(alert_body("links-1", runbook=runbook))
    payload["data"]["alertContext"] = {"condition": {"allOf": [
        {"metricName": "x", "linkToSearchResultsUI": "javascript:alert(2)"},
    ]}}
    assert api.receive_alert({}, json.dumps(payload).encode()).status == 200
    (message,) = receiver.received
    urls = [a["url"] for a in message["actions"] if "url" in a]
    assert urls and all(u.startswith("https://portal.azure.com/") for u in urls), urls
    assert not any(a["label"] == "Follow the runbook" for a in message["actions"])
    assert "javascript" not in json.dumps(message["actions"]).lower()


@pytest.mark.usefixtures("pitcrew_env")
def test_an_https_runbook_is_kept(receiver: Receiver) -> None:
    body = alert_body("links-2", runbook="https://runbooks.contoso.com/dead-letters#replay")
    assert api.receive_alert({}, body).status == 200
    (message,) = receiver.received
    runbook = {"label": "Follow the runbook",
               "url": "https://runbooks.contoso.com/dead-letters#replay"}
    assert runbook in message["actions"]
