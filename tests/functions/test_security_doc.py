"""docs/security.md lists every HTTP route the app serves, with each of its methods."""

from __future__ import annotations

from pathlib import Path

import function_app

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _http_routes() -> list[tuple[str, str]]:
    app = function_app.app
    # azure-functions remembers the names it indexed and calls a second indexing a duplicate.
    app.functions_bindings = None  # type: ignore[attr-defined]
    routes = []
    for fn in app.get_functions():
        trigger = fn.get_trigger().get_dict_repr()
        if trigger.get("type") != "httpTrigger":
            continue
        for method in trigger.get("methods") or ["GET"]:
            routes.append((str(getattr(method, "value", method)).upper(), str(trigger["route"])))
    app.functions_bindings = None  # type: ignore[attr-defined]
    return routes


def test_every_route_is_in_the_security_doc() -> None:
    doc = SECURITY_DOC.read_text()
    routes = _http_routes()
    assert len(routes) >= 20
    missing = [f"{m} /api/{r}" for m, r in routes if f"`{m} /api/{r}`" not in doc]
    assert not missing, f"docs/security.md does not describe: {missing}"
