"""The quota tests' world: a local Azure endpoint serving the Quota API and metrics, Azurite,
a webhook receiver, and a policy with a quota section."""

from __future__ import annotations

import json
import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitcrew_dev.azure_endpoint import LocalAzure

LOCATION = "eastus"
PROVIDER = "Microsoft.Compute"
QUOTA = "standardDSv5Family"


class QuotaWorld:
    def __init__(self, endpoint: LocalAzure, policy: Path) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.base_policy = policy.read_text()
        self.subscription = str(uuid.uuid4())
        self.scope = f"subscriptions/{self.subscription}/providers/{PROVIDER}/locations/{LOCATION}"
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=str(endpoint.ca_path)),
                                 base_url=endpoint.url)

    def write_policy(self, extra: str = "", **auto: Any) -> None:
        auto_yaml = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in auto.items())
        self.policy.write_text(
            self.base_policy
            + "quota:\n"
            + f"  subscriptions: ['{self.subscription}']\n"
            + f"  providers: [{PROVIDER}]\n"
            + f"  locations: [{LOCATION}]\n"
            + "  forecast:\n    min_samples: 3\n"
            + "  auto_increase:\n    enabled: true\n    headroom: 1.5\n    step: 10\n"
            + auto_yaml + extra)
        from pitcrew.bootstrap import reset_services
        from pitcrew.runtime import reset_runtime

        reset_runtime()
        reset_services()

    def seed(self, name: str = QUOTA, **fields: Any) -> None:
        body = {"scope": self.scope, "name": name, **fields}
        answer = self.http.post("/_local/quotas", json=body)
        assert answer.status_code == 200, answer.text

    def endpoint_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.http.get("/_local/quotas").json()
        return state

    def requests_for(self, name: str = QUOTA) -> list[dict[str, Any]]:
        return [r for r in self.endpoint_state()["requests"]
                if r["scope"] == self.scope and r["name"] == name]

    def limit_of(self, name: str = QUOTA) -> int:
        return next(int(q["limit"]) for q in self.endpoint_state()["quotas"]
                    if q["scope"] == self.scope and q["name"] == name)

    def quota_alert(self, name: str = QUOTA, *, alert_id: str | None = None) -> dict[str, Any]:
        """Azure's quota alert (shared/samples/common-alert-log-quota.json) for this quota."""
        from tests.conftest import SAMPLES  # ../shared/samples, or the repo's copy

        sample = SAMPLES / "common-alert-log-quota.json"
        payload: dict[str, Any] = json.loads(sample.read_text())
        text = json.dumps(payload).replace("00000000-0000-0000-0000-000000000000",
                                           self.subscription)
        text = text.replace("standardDSv5Family", name)
        payload = json.loads(text)
        if alert_id:
            payload["data"]["essentials"]["alertId"] = (
                f"/subscriptions/{self.subscription}/providers/Microsoft.AlertsManagement/"
                f"alerts/{alert_id}")
        return payload


def quota_world(pitcrew_env: Path, endpoint: LocalAzure, monkeypatch: pytest.MonkeyPatch
                ) -> QuotaWorld:
    """The `world` fixture's body: the app pointed at `endpoint`, automatic increases on, the
    policy written."""
    env = endpoint.environment()
    for name in ("PITCREW_LOCAL_AZURE_URL", "PITCREW_LOCAL_AZURE_CA"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("PITCREW_QUOTA_AUTO_INCREASE", "true")
    w = QuotaWorld(endpoint, pitcrew_env)
    w.write_policy()
    return w
