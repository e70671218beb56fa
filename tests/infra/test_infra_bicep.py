"""Properties of infra/ asserted on the Bicep itself, parsed with a real Bicep parser (pycep).

Each test names one promise made in docs/security.md; each would fail if the property were
changed in the Bicep. No Azure access, no emulator: the files are parsed once per session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
QUOTA_REQUEST_OPERATOR = "0e5f05e5-9ab9-446b-b98d-1e2157c94125"

# Every built-in role pitcrew's Bicep may assign, verified against Microsoft's built-in role list
# (docs/security.md repeats this table with the reason for each).
KNOWN_BUILTIN_ROLES = {
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "21090545-7ca7-4776-b22c-e363652d74d2": "Key Vault Reader",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "c2f4ef07-c644-48eb-af81-4b1b4947fb11": "AcrDelete",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "73c42c96-874c-492b-b04d-ab87d138a893": "Log Analytics Reader",
    "0e5f05e5-9ab9-446b-b98d-1e2157c94125": "Quota Request Operator",
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": "Monitoring Reader",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": "Key Vault Crypto Officer",
    "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
}

# The documented exceptions to "every assignment names one resource" (docs/security.md), each by
# file and symbol: the restore drill role on the dedicated scratch resource group (the restored
# account does not exist when deploying), and the restore source role on the subscription (Cosmos
# DB authorizes a restore only on the restorable account or the subscription).
RESOURCE_GROUP_SCOPE_EXCEPTIONS = {("drill-access.bicep", "scratchGroup")}
SUBSCRIPTION_SCOPE_EXCEPTIONS = {("restore-source-access.bicep", "restoreSource")}


@dataclass(frozen=True)
class Resource:
    file: Path
    symbol: str
    type: str
    existing: bool
    body: dict[str, Any]  # the resource body, unwrapped from any loop or condition


@dataclass(frozen=True)
class Template:
    path: Path
    scope: str
    variables: dict[str, Any]
    parameters: dict[str, Any]
    resources: list[Resource]


@cache
def _parser() -> BicepParser:
    return BicepParser()


def _unwrap(config: dict[str, Any]) -> dict[str, Any]:
    # Loops and conditions wrap the body: {"loop_type"|"condition": ..., "config": body}.
    while isinstance(config.get("config"), dict) and (
        "loop_type" in config or "condition" in config
    ):
        config = config["config"]
    return config


@cache
def template(path: Path) -> Template:
    parsed: dict[str, Any] = _parser().parse(file_path=path)  # type: ignore[assignment]
    scope = parsed.get("globals", {}).get("scope", {}).get("value", "resourceGroup")
    variables = {name: var["value"] for name, var in parsed.get("variables", {}).items()}
    resources = [
        Resource(
            file=path,
            symbol=symbol,
            type=res["type"],
            existing=bool(res.get("existing")),
            body=_unwrap(res["config"]),
        )
        for symbol, res in parsed.get("resources", {}).items()
    ]
    return Template(path, scope, variables, parsed.get("parameters", {}), resources)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def all_templates() -> list[Template]:
    return [template(p) for p in bicep_files()]


def deployed(type_: str) -> Iterator[tuple[Template, Resource]]:
    """Resources of a type that the Bicep creates (not `existing` references)."""
    for t in all_templates():
        for r in t.resources:
            if r.type.lower() == type_.lower() and not r.existing:
                yield t, r


def expand(value: Any, variables: dict[str, Any], depth: int = 0) -> Any:
    """Replace references to variables by their values (pycep keeps identifiers as strings)."""
    if depth > 10:
        return value
    if isinstance(value, str):
        if value in variables:
            return expand(variables[value], variables, depth + 1)
        return value
    if isinstance(value, dict):
        return {k: expand(v, variables, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, variables, depth + 1) for v in value]
    return value


def text_of(value: Any) -> str:
    return json.dumps(value, default=str)


def get(body: dict[str, Any], dotted: str) -> Any:
    node: Any = body
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def setting_items(value: Any) -> list[dict[str, Any]]:
    """Flatten an expanded appSettings expression (arrays, concat(), conditionals) into items."""
    found: list[dict[str, Any]] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "name" in item and "value" in item:
                found.append(item)
            else:
                found.extend(setting_items(item))
    elif isinstance(value, dict):
        if "name" in value and "value" in value:  # the body of a `[for ...]` loop
            return [value]
        for item in value.values():
            found.extend(setting_items(item))
    return found


def function_app() -> tuple[Template, Resource]:
    sites = list(deployed("Microsoft.Web/sites"))
    assert len(sites) == 1, "expected exactly one function app"
    return sites[0]


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    t = template(path)
    assert t.scope in {"resourceGroup", "subscription"}
    assert t.resources or path.name == "main.bicep"


def test_main_declares_every_module_it_uses() -> None:
    text = (INFRA / "main.bicep").read_text()
    referenced = set(re.findall(r"module \w+ '([^']+)'", text))
    assert referenced, "main.bicep uses no module"
    for rel in referenced:
        assert (INFRA / rel).is_file(), f"main.bicep references missing module {rel}"
    unused = {
        p.relative_to(INFRA).as_posix() for p in (INFRA / "modules").glob("*.bicep")
    } - referenced
    assert not unused, f"modules nobody deploys: {sorted(unused)}"


def test_storage_is_identity_only() -> None:
    accounts = list(deployed("Microsoft.Storage/storageAccounts"))
    assert accounts
    for _, account in accounts:
        props = account.body["properties"]
        assert props.get("allowSharedKeyAccess") is False
        assert props.get("allowBlobPublicAccess") is False
        assert props.get("defaultToOAuthAuthentication") is True


def test_functions_host_reaches_storage_through_the_identity() -> None:
    t, site = function_app()
    settings = {
        s["name"]: s["value"]
        for s in setting_items(
            expand(get(site.body, "properties.siteConfig.appSettings"), t.variables)
        )
        if isinstance(s["name"], str)  # loop bodies (Key Vault references) have computed names
    }
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__accountName"]
    assert settings["AzureWebJobsStorage__clientId"] == settings["AZURE_CLIENT_ID"]
    assert "AzureWebJobsStorage" not in settings, "a connection-string AzureWebJobsStorage"
    assert "AccountKey" not in text_of(settings)
    deployment = get(site.body, "properties.functionAppConfig.deployment.storage.authentication")
    assert deployment["type"] == "UserAssignedIdentity"


def test_function_app_settings_reference_no_secret_values() -> None:
    t, site = function_app()
    items = setting_items(expand(get(site.body, "properties.siteConfig.appSettings"), t.variables))
    assert len(items) >= 8
    secure_params = {
        name
        for name, p in t.parameters.items()
        if any(d.get("type") == "secure" for d in p.get("decorators", []))
    }
    for item in items:
        raw_name = item["name"]
        name = raw_name if isinstance(raw_name, str) else text_of(raw_name)
        value = text_of(item["value"])
        assert not re.search(r"list\w*\(|list_\w+|\"type\": \"list", value), f"{name} lists keys"
        for marker in ("AccountKey=", "SharedAccessKey", "SharedAccessSignature", "sig="):
            assert marker not in value, f"{name} holds a secret ({marker})"
        if "@Microsoft.KeyVault" in value:
            # A secret setting may only be a reference the platform resolves with the identity.
            assert re.fullmatch(
                r"[\"']?@Microsoft\.KeyVault\(SecretUri=\$\{\w+\.secretUri\}\)[\"']?",
                value.strip(),
            ), f"{name} must be a bare Key Vault reference"
            continue
        assert not any(p in value for p in secure_params), f"{name} carries a @secure() parameter"
        if re.search(r"(KEY|SECRET|PASSWORD|CONNECTION_?STRING)$", name, re.I):
            # The one exception: the Application Insights connection string only locates the
            # ingestion endpoint, because local (key) authentication is disabled on it.
            assert name == "APPLICATIONINSIGHTS_CONNECTION_STRING", f"{name} looks like a secret"
    names = {i["name"] for i in items if isinstance(i["name"], str)}
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in names


def test_secret_settings_are_key_vault_references_resolved_by_the_app_identity() -> None:
    t, site = function_app()
    items = setting_items(expand(get(site.body, "properties.siteConfig.appSettings"), t.variables))
    references = [i for i in items if "@Microsoft.KeyVault" in text_of(i["value"])]
    assert references, "webhook URLs with tokens need a Key Vault reference setting"
    assert get(site.body, "properties.keyVaultReferenceIdentity") == "appIdentityId"


def test_telemetry_accepts_entra_only() -> None:
    workspaces = list(deployed("Microsoft.OperationalInsights/workspaces"))
    components = list(deployed("Microsoft.Insights/components"))
    topics = list(deployed("Microsoft.EventGrid/topics"))
    assert workspaces and components and topics
    for _, w in workspaces:
        assert get(w.body, "properties.features.disableLocalAuth") is True
    for _, c in components:
        assert get(c.body, "properties.DisableLocalAuth") is True
    for _, tp in topics:
        assert get(tp.body, "properties.disableLocalAuth") is True


def _role_guids(t: Template, r: Resource) -> set[str]:
    role = expand(get(r.body, "properties.roleDefinitionId"), t.variables)
    return {g.lower() for g in GUID.findall(text_of(role))}


def test_no_contributor_or_owner_and_every_assignment_is_resource_scoped() -> None:
    assignments = list(deployed("Microsoft.Authorization/roleAssignments"))
    assert len(assignments) >= 15
    for t, r in assignments:
        guids = _role_guids(t, r)
        where = f"{t.path.name}:{r.symbol}"
        assert not guids & {OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR}, where
        if t.scope == "subscription" and "scope" not in r.body:
            # Subscription-scope assignments: only the quota role, which has no narrower scope,
            # and the named restore source exception.
            assert t.path.name == "quota-access.bicep" or (
                (t.path.name, r.symbol) in SUBSCRIPTION_SCOPE_EXCEPTIONS
            ), f"{where} is subscription-wide"
        elif (t.path.name, r.symbol) in RESOURCE_GROUP_SCOPE_EXCEPTIONS:
            assert "scope" not in r.body, f"{where}: the exception is the scratch group itself"
        else:
            # Resource-group templates: always an explicit resource scope, never the whole group.
            assert r.body.get("scope"), f"{where} is assigned to its whole resource group"
        for g in guids:
            assert g in KNOWN_BUILTIN_ROLES, f"{where} assigns unverified role {g}"


def test_subscription_scope_quota_role_is_the_operator_only_when_auto_increase() -> None:
    t = template(INFRA / "modules" / "quota-access.bicep")
    role_expr = t.variables["roleDefinitionId"]
    conditional = role_expr["operator"]
    assert conditional["type"] == "conditional"
    assert conditional["operands"]["condition"] == "autoIncrease"
    assert QUOTA_REQUEST_OPERATOR in text_of(
        expand(conditional["operands"]["true_value"], t.variables)
    )
    assert conditional["operands"]["false_value"] == "quotaReaderRoleId"


ALLOWED_CUSTOM_ACTION = re.compile(
    r"^Microsoft\.(DocumentDB|Storage|ServiceBus|EventHub|Quota|Compute|Network)/[\w/]+/"
    r"(read|listKeys/action|listkeys/action|regenerateKey/action|regeneratekey/action|regenerateKeys/action)$"
)
# The consumer refresher's actions on a consumer site, exactly (docs/security.md says why the
# refresh is the one wildcard: its operation is not in Microsoft.Web's published list).
CONSUMER_REFRESHER_ACTIONS = {
    "Microsoft.Web/sites/read",
    "Microsoft.Web/sites/restart/action",
    "Microsoft.Web/sites/config/appsettings/*",
}


# Recovery roles (issue 15): exactly these actions, each copied from Microsoft's published
# operations list (azure-docs role-based-access-control/permissions/databases.md, storage.md,
# monitor.md). The drill role's writes exist only on the scratch resource group.
RECOVERY_ROLE_ACTIONS = {
    "recoveryChecker": {
        "Microsoft.DocumentDB/databaseAccounts/read",
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/read",
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/read",
        "Microsoft.Storage/storageAccounts/blobServices/read",
    },
    "restoreDrill": {
        "Microsoft.DocumentDB/databaseAccounts/read",
        "Microsoft.DocumentDB/databaseAccounts/write",
        "Microsoft.DocumentDB/databaseAccounts/delete",
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/read",
        "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/read",
        "Microsoft.DocumentDB/locations/operationsStatus/read",
        "Microsoft.DocumentDB/operationResults/read",
        "Microsoft.Insights/metrics/read",
    },
    "restoreSource": {
        "Microsoft.DocumentDB/locations/restorableDatabaseAccounts/read",
        "Microsoft.DocumentDB/locations/restorableDatabaseAccounts/restore/action",
        "Microsoft.DocumentDB/locations/operationsStatus/read",
        "Microsoft.DocumentDB/operationResults/read",
    },
}


def test_custom_roles_hold_only_list_and_regenerate_keys() -> None:
    roles = list(deployed("Microsoft.Authorization/roleDefinitions"))
    assert len(roles) >= 3
    for _, r in roles:
        props = r.body["properties"]
        assert props["type"] == "CustomRole"
        assert props["assignableScopes"] != ["/"]
        for permission in props["permissions"]:
            assert permission["dataActions"] == []
            for action in permission["actions"]:
                if r.symbol == "consumerRefresher" and action in CONSUMER_REFRESHER_ACTIONS:
                    continue
                if action in RECOVERY_ROLE_ACTIONS.get(r.symbol, set()):
                    continue
                assert ALLOWED_CUSTOM_ACTION.match(action), f"{r.symbol}: {action}"
                assert "*" not in action and not action.endswith("/write"), action


def test_rotation_roles_cover_list_and_regenerate_for_each_service() -> None:
    actions = {
        a.lower()
        for _, r in deployed("Microsoft.Authorization/roleDefinitions")
        for p in r.body["properties"]["permissions"]
        for a in p["actions"]
    }
    for needed in (
        "microsoft.documentdb/databaseaccounts/listkeys/action",
        "microsoft.documentdb/databaseaccounts/regeneratekey/action",
        "microsoft.storage/storageaccounts/listkeys/action",
        "microsoft.storage/storageaccounts/regeneratekey/action",
        "microsoft.servicebus/namespaces/authorizationrules/listkeys/action",
        "microsoft.servicebus/namespaces/authorizationrules/regeneratekeys/action",
        "microsoft.eventhub/namespaces/authorizationrules/read",
        "microsoft.eventhub/namespaces/authorizationrules/listkeys/action",
        "microsoft.eventhub/namespaces/authorizationrules/regeneratekeys/action",
        "microsoft.eventhub/namespaces/eventhubs/authorizationrules/read",
        "microsoft.eventhub/namespaces/eventhubs/authorizationrules/listkeys/action",
        "microsoft.eventhub/namespaces/eventhubs/authorizationrules/regeneratekeys/action",
    ):
        assert needed in actions


def _custom_role(symbol: str) -> dict[str, Any]:
    t = template(INFRA / "modules" / "custom-roles.bicep")
    found = [r for r in t.resources if r.symbol == symbol and not r.existing]
    assert len(found) == 1, f"custom-roles.bicep defines no {symbol}"
    return found[0].body["properties"]


def _module_blocks(text: str, path: str) -> list[str]:
    """The text of each `module name 'path' = ...` block of main.bicep."""
    return re.findall(
        rf"^module \w+ '{re.escape(path)}' = (.*?)^\}}\]?$", text, re.M | re.S
    )


def _assigned_per_resource(module: str, param: str, role_output: str, resource_type: str) -> None:
    """main.bicep loops `module` over the `param` list and passes the custom role `role_output`;
    the module assigns it on that one existing resource, nowhere else; azd passes `param`."""
    main = template(INFRA / "main.bicep")
    assert main.parameters[param]["default"] == [], f"{param} must be optional"
    text = (INFRA / "main.bicep").read_text()
    blocks = _module_blocks(text, f"modules/{module}")
    assert len(blocks) == 1, f"main.bicep does not deploy modules/{module} once"
    block = blocks[0]
    assert f"[for id in {param}:" in block
    assert "scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])" in block
    assert f"roleDefinitionId: customRoles.outputs.{role_output}" in block
    assert "principalId: identities.outputs.appIdentityPrincipalId" in block
    roles = (INFRA / "modules" / "custom-roles.bicep").read_text()
    assert re.search(rf"^output {role_output} string = \w+\.id$", roles, re.M)
    m = template(INFRA / "modules" / module)
    targets = [r for r in m.resources if r.existing]
    assert [r.type for r in targets] == [resource_type]
    assignments = [r for r in m.resources if r.type == "Microsoft.Authorization/roleAssignments"]
    assert len(assignments) == 1
    assert assignments[0].body["scope"] == targets[0].symbol
    assert get(assignments[0].body, "properties.roleDefinitionId") == "roleDefinitionId"
    assert param in _azd_parameters()


def test_event_hubs_key_operator_is_assigned_on_each_rotated_namespace_only() -> None:
    props = _custom_role("eventHubsKeyOperator")
    actions = {a for p in props["permissions"] for a in p["actions"]}
    assert actions == {
        f"Microsoft.EventHub/namespaces/{level}authorizationRules/{op}"
        for level in ("", "eventhubs/")
        for op in ("read", "listkeys/action", "regenerateKeys/action")
    }
    assert "Event Hubs key operator" in text_of(props["roleName"])
    _assigned_per_resource("rotated-eventhubs.bicep", "rotatedEventHubsNamespaceIds",
                           "eventHubsKeyOperatorId", "Microsoft.EventHub/namespaces")


def test_consumer_sites_get_refresh_and_restart_only() -> None:
    props = _custom_role("consumerRefresher")
    assert "consumer refresher" in text_of(props["roleName"])
    actions = {a for p in props["permissions"] for a in p["actions"]}
    assert actions == CONSUMER_REFRESHER_ACTIONS
    for p in props["permissions"]:
        assert p["notActions"] == [] and p["dataActions"] == []
    lowered = {a.lower() for a in actions}
    # Never the setting values (config/list), never a settings or site write.
    assert not any(a.startswith("microsoft.web/sites/config/list") for a in lowered)
    assert not any(a.endswith(("/write", "/delete")) for a in lowered)
    assert "microsoft.web/sites/*" not in lowered and "microsoft.web/sites/config/*" not in lowered
    _assigned_per_resource("consumer-site.bicep", "consumerSiteIds",
                           "consumerRefresherId", "Microsoft.Web/sites")


def test_function_app_gets_the_service_bus_suffix_for_sovereign_clouds() -> None:
    settings = _site_settings()
    assert settings["PITCREW_SERVICEBUS_SUFFIX"] == "serviceBusSuffix"
    fa = template(INFRA / "modules" / "functionapp.bicep")
    main = template(INFRA / "main.bicep")
    for t in (fa, main):
        assert t.parameters["serviceBusSuffix"]["default"] == "servicebus.windows.net"
    text = (INFRA / "main.bicep").read_text()
    assert "serviceBusSuffix: serviceBusSuffix" in text
    given = _azd_parameters()
    assert given["serviceBusSuffix"]["value"] == "servicebus.windows.net"


def test_every_event_grid_subscription_dead_letters_and_retries() -> None:
    subscriptions = [
        (t, r)
        for t in all_templates()
        for r in t.resources
        if r.type.lower().endswith("/eventsubscriptions") and not r.existing
    ]
    assert subscriptions, "no Event Grid subscription found"
    for _, s in subscriptions:
        props = s.body["properties"]
        retry = props.get("retryPolicy") or {}
        assert retry.get("maxDeliveryAttempts"), s.symbol
        assert retry.get("eventTimeToLiveInMinutes"), s.symbol
        dead_letter = props.get("deadLetterDestination") or get(
            props, "deadLetterWithResourceIdentity.deadLetterDestination"
        )
        assert dead_letter, f"{s.symbol} has no dead-letter destination"
        assert dead_letter["endpointType"] == "StorageBlob"
        assert dead_letter["properties"]["blobContainerName"]
        assert props["filter"]["includedEventTypes"], "an unfiltered subscription"
        assert props["destination"]["endpointType"] == "AzureFunction"


def test_key_vault_events_reach_on_keyvault_event_with_all_expiry_types() -> None:
    main = template(INFRA / "main.bicep")
    text = (INFRA / "main.bicep").read_text()
    assert "functionName: 'on_keyvault_event'" in text
    types = set(main.variables["keyVaultEventTypes"])
    for kind in ("Secret", "Key", "Certificate"):
        assert f"Microsoft.KeyVault.{kind}NearExpiry" in types
        assert f"Microsoft.KeyVault.{kind}Expired" in types
        assert f"Microsoft.KeyVault.{kind}NewVersionCreated" in types  # resolves the alert


def test_https_only() -> None:
    _, site = function_app()
    assert site.body["properties"]["httpsOnly"] is True
    for _, account in deployed("Microsoft.Storage/storageAccounts"):
        assert account.body["properties"]["supportsHttpsTrafficOnly"] is True
    for _, config in deployed("Microsoft.Web/sites/config"):
        if config.body.get("name") == "authsettingsV2":
            assert get(config.body, "properties.httpSettings.requireHttps") is True


TLS_KEYS = {"minimumTlsVersion", "minTlsVersion", "scmMinTlsVersion", "minimumTlsVersionAllowed"}
TLS_REQUIRED = {
    "microsoft.storage/storageaccounts": ["properties.minimumTlsVersion"],
    "microsoft.web/sites": [
        "properties.siteConfig.minTlsVersion",
        "properties.siteConfig.scmMinTlsVersion",
    ],
    "microsoft.eventgrid/topics": ["properties.minimumTlsVersionAllowed"],
}


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_minimum_tls_is_1_2_everywhere() -> None:
    checked = 0
    for t in all_templates():
        for r in t.resources:
            if r.existing:
                continue
            for path in TLS_REQUIRED.get(r.type.lower(), []):
                assert get(r.body, path) in {"TLS1_2", "1.2"}, f"{r.symbol}: {path}"
                checked += 1
            for key, value in _walk(r.body):
                if key in TLS_KEYS:
                    assert value in {"TLS1_2", "1.2"}, f"{r.symbol}: {key}={value}"
    assert checked >= 4


def test_operator_routes_require_entra_and_machine_routes_are_excluded() -> None:
    configs = [
        r
        for _, r in deployed("Microsoft.Web/sites/config")
        if r.body.get("name") == "authsettingsV2"
    ]
    assert len(configs) == 1
    props = configs[0].body["properties"]
    assert props["platform"]["enabled"] is True
    validation = props["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert set(validation["excludedPaths"]) == {
        "/api/alerts",
        "/api/events",
        "/api/health",
        "/runtime/webhooks/eventgrid",
    }
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True
    assert "clientSecretSettingName" not in aad.get("registration", {}), "no client secret"
    assert props["login"]["tokenStore"]["enabled"] is False


def test_flex_consumption_python_311_with_no_publishing_passwords() -> None:
    _, site = function_app()
    runtime = get(site.body, "properties.functionAppConfig.runtime")
    assert runtime["name"] == "python"
    assert runtime["version"] == "pythonVersion"
    fa = template(INFRA / "modules" / "functionapp.bicep")
    assert fa.parameters["pythonVersion"]["default"] == "3.11"
    plans = [r for _, r in deployed("Microsoft.Web/serverfarms")]
    assert [p.body["sku"]["tier"] for p in plans] == ["FlexConsumption"]
    policies = {
        r.body["name"]: r.body
        for _, r in deployed("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert set(policies) == {"ftp", "scm"}
    assert all(p["properties"]["allow"] is False for p in policies.values())
    assert get(site.body, "properties.siteConfig.ftpsState") == "Disabled"


def _pitcrew_receivers() -> tuple[dict[str, Any], dict[str, Any]]:
    """(secure, plain) forms of the action group's pitcrew webhook receiver."""
    alerts = template(INFRA / "modules" / "alerts.bicep")
    listed = alerts.variables["pitcrewReceiver"]["operator"]["operands"]["true_value"]
    assert len(listed) == 1
    choice = listed[0]["operator"]
    assert choice["type"] == "conditional" and choice["operands"]["condition"] == "secureWebhook"
    condition = text_of(alerts.variables["secureWebhook"])
    assert "secureWebhookObjectId" in condition and "empty" in condition and "not" in condition
    return choice["operands"]["true_value"], choice["operands"]["false_value"]


def test_alert_webhook_uses_common_alert_schema_and_the_alerts_route() -> None:
    for receiver in _pitcrew_receivers():
        assert receiver["useCommonAlertSchema"] is True
        assert "/api/alerts?code=" in receiver["serviceUri"]
        assert "/functions/receive_alert" in receiver["serviceUri"]
    for _, group in deployed("Microsoft.Insights/actionGroups"):
        assert group.body["properties"]["enabled"] is True
    rule_names = {r.symbol for _, r in deployed("Microsoft.Insights/scheduledQueryRules")}
    assert {"functionFailures", "failedRotations", "quotaUsage"} <= rule_names
    metric = [r for _, r in deployed("Microsoft.Insights/metricAlerts")]
    assert any("DeadletteredMessages" in text_of(m.body) for m in metric)


def test_alert_webhook_is_a_secure_webhook_when_the_app_registration_is_given() -> None:
    secure, plain = _pitcrew_receivers()
    assert secure["useAadAuth"] is True
    assert secure["objectId"] == "secureWebhookObjectId"
    assert secure["identifierUri"] == "secureWebhookIdentifierUri"
    assert secure["tenantId"] == "secureWebhookTenantId"
    assert not {"useAadAuth", "objectId", "identifierUri", "tenantId"} & set(plain)
    main = template(INFRA / "main.bicep")
    for name in ("alertWebhookAppObjectId", "alertWebhookIdentifierUri"):
        assert main.parameters[name]["default"] == "", f"{name} must be optional"
    text = (INFRA / "main.bicep").read_text()
    assert "secureWebhookObjectId: alertWebhookAppObjectId" in text
    given = _azd_parameters()
    assert {"alertWebhookAppObjectId", "alertWebhookIdentifierUri"} <= set(given)


def _site_settings() -> dict[str, Any]:
    t, site = function_app()
    return {
        s["name"]: s["value"]
        for s in setting_items(
            expand(get(site.body, "properties.siteConfig.appSettings"), t.variables)
        )
        if isinstance(s["name"], str)
    }


def test_function_app_validates_the_alert_token_with_the_action_group_settings() -> None:
    settings = _site_settings()
    assert settings["PITCREW_ALERT_TOKEN_ROLE"] == "ActionGroupsSecureWebhook"
    assert settings["PITCREW_ALERT_TOKEN_AUDIENCE"] == "alertTokenAudience"
    assert settings["PITCREW_ALERT_TOKEN_TENANT"] == "alertTokenTenantId"
    required = text_of(settings["PITCREW_ALERT_TOKEN_REQUIRED"])
    assert "alertTokenRequired" in required and '"true"' in required
    text = (INFRA / "main.bicep").read_text()
    # The app requires the token exactly when the action group sends one, for the same audience.
    assert "alertTokenRequired: alertSecureWebhook" in text
    assert "alertTokenAudience: alertSecureWebhook ? alertTokenAudience : ''" in text
    assert "secureWebhookIdentifierUri: alertSecureWebhook ? alertTokenAudience : ''" in text
    assert "alertTokenTenantId: alertSecureWebhook ? alertWebhookTenantId : ''" in text
    assert "secureWebhookTenantId: alertSecureWebhook ? alertWebhookTenantId : ''" in text


def test_function_app_knows_its_public_url_and_the_allowed_webhook_origin() -> None:
    settings = _site_settings()
    assert settings["PITCREW_WEBHOOK_ALLOWED_ORIGINS"] == "eventgrid.azure.net"
    base = text_of(settings["PITCREW_PUBLIC_BASE_URL"])
    assert "https://${name}.azurewebsites.net" in base
    fa = template(INFRA / "modules" / "functionapp.bicep")
    assert fa.parameters["publicBaseUrl"]["default"] == ""
    _, site = function_app()
    # The default host name is <name>.azurewebsites.net only without a generated domain label.
    assert "autoGeneratedDomainNameLabelScope" not in text_of(site.body)


def test_key_vault_roles_are_per_secret_when_the_names_are_given() -> None:
    kv = template(INFRA / "modules" / "keyvault-access.bicep")
    by_symbol = {r.symbol: r for r in kv.resources}
    secrets = by_symbol["secrets"]
    assert secrets.existing and secrets.type == "Microsoft.KeyVault/vaults/secrets"
    officer = by_symbol["secretOfficer"]
    assert "secrets" in text_of(officer.body["scope"]) and "index" in text_of(officer.body["scope"])
    assert _role_guids(kv, officer) == {"b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}
    reader = by_symbol["metadataReader"]
    assert reader.body["scope"] == "vault"
    assert _role_guids(kv, reader) == {"21090545-7ca7-4776-b22c-e363652d74d2"}
    vault_officer = by_symbol["vaultSecretsOfficer"]
    assert _role_guids(kv, vault_officer) == {"b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}
    parsed = _parser().parse(file_path=kv.path)
    conditions = {
        name: text_of(parsed["resources"][name]["config"].get("condition"))
        for name in ("metadataReader", "vaultSecretsOfficer")
    }
    # Vault-wide Secrets Officer only when no secret is named; the Reader only beside per-secret.
    assert "perSecret" in conditions["metadataReader"]
    assert (
        "not" in conditions["vaultSecretsOfficer"]
        and "perSecret" in conditions["vaultSecretsOfficer"]
    )
    assert "not" not in conditions["metadataReader"]
    text = (INFRA / "main.bicep").read_text()
    assert "secretNames: contains(v, 'secrets') ? v.secrets : []" in text


def test_blob_recovery_is_enabled_on_pitcrew_storage() -> None:
    services = [r for _, r in deployed("Microsoft.Storage/storageAccounts/blobServices")]
    assert services
    for s in services:
        props = s.body["properties"]
        assert props["isVersioningEnabled"] is True
        assert props["deleteRetentionPolicy"]["enabled"] is True
        assert props["containerDeleteRetentionPolicy"]["enabled"] is True
        assert props["restorePolicy"]["enabled"] is True
        assert props["changeFeed"]["enabled"] is True
    locks = [r for _, r in deployed("Microsoft.Authorization/locks")]
    assert any(lock.body["properties"]["level"] == "CanNotDelete" for lock in locks)


def _azd_parameters() -> dict[str, Any]:
    raw = (INFRA / "main.parameters.json").read_text()
    # azd substitutes ${NAME} and ${NAME=default} before parsing; do the same with stand-ins.
    raw = re.sub(r"\$\{\w+=([^}]*)\}", lambda m: m.group(1) or "", raw)
    raw = re.sub(r"\$\{\w+\}", "stand-in", raw)
    return json.loads(raw)["parameters"]


def test_azd_parameters_match_main_bicep() -> None:
    main = template(INFRA / "main.bicep")
    given = _azd_parameters()
    unknown = set(given) - set(main.parameters)
    assert not unknown, f"main.parameters.json sets unknown parameters {unknown}"
    required = {n for n, p in main.parameters.items() if "default" not in p}
    assert required <= set(given), f"required parameters azd does not pass: {required - set(given)}"
    assert given["wireFunctionEndpoints"]["value"] is False


def test_azure_yaml_deploys_the_repo_as_a_python_function_app() -> None:
    text = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^\s+host: function$", text, re.M)
    assert re.search(r"^\s+language: python$", text, re.M)
    assert "path: infra" in text
    hook = INFRA / "hooks" / "postdeploy.sh"
    assert hook.is_file() and "PITCREW_WIRE_FUNCTION_ENDPOINTS" in hook.read_text()
    site_tags = text_of(function_app()[1].body["tags"])
    assert "azd-service-name" in site_tags and '"api"' in site_tags


def test_security_doc_lists_every_role_and_custom_action() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    used = set()
    for t, r in deployed("Microsoft.Authorization/roleAssignments"):
        used |= _role_guids(t, r)
    for guid in used:
        assert guid in doc, (
            f"docs/security.md does not explain {KNOWN_BUILTIN_ROLES.get(guid, guid)}"
        )
    for _, r in deployed("Microsoft.Authorization/roleDefinitions"):
        name = re.sub(r"\s*\(\$\{environmentName\}\)$", "", r.body["properties"]["roleName"])
        assert name.startswith("pitcrew ") and name in doc, f"docs/security.md lacks {name}"
        for p in r.body["properties"]["permissions"]:
            for action in p["actions"]:
                assert action in doc, f"docs/security.md does not explain {action}"


def _condition(t: Template, symbol: str) -> str:
    parsed = _parser().parse(file_path=t.path)
    return text_of(parsed["resources"][symbol]["config"].get("condition"))


def test_key_and_certificate_officers_only_on_vaults_with_such_rules() -> None:
    kv = template(INFRA / "modules" / "keyvault-access.bicep")
    by_symbol = {r.symbol: r for r in kv.resources}
    assert kv.parameters["keys"]["default"] is False
    assert kv.parameters["certificates"]["default"] is False
    keys = by_symbol["keyOfficer"]
    assert keys.body["scope"] == "vault"
    assert _role_guids(kv, keys) == {"14b46e9e-c2b7-41b4-b07b-48a6ebf60603"}
    assert "keys" in _condition(kv, "keyOfficer")
    certs = by_symbol["certificateOfficer"]
    assert certs.body["scope"] == "vault"
    assert _role_guids(kv, certs) == {"a4417e6f-fecd-4de8-b567-7b0420556985"}
    assert "certificates" in _condition(kv, "certificateOfficer")
    text = (INFRA / "main.bicep").read_text()
    assert "keys: contains(v, 'keys') ? bool(v.keys) : false" in text
    assert "certificates: contains(v, 'certificates') ? bool(v.certificates) : false" in text


def test_recovery_roles_hold_exactly_their_published_actions() -> None:
    for symbol, expected in RECOVERY_ROLE_ACTIONS.items():
        props = _custom_role(symbol)
        actions = {a for p in props["permissions"] for a in p["actions"]}
        assert actions == expected, symbol
        for p in props["permissions"]:
            assert p["notActions"] == [] and p["dataActions"] == [] and p["notDataActions"] == []
        lowered = {a.lower() for a in actions}
        assert not any("listkeys" in a or "listconnectionstrings" in a for a in lowered)
        assert not any("*" in a for a in lowered)
    assert "recovery checker" in text_of(_custom_role("recoveryChecker")["roleName"])
    assert "restore drill" in text_of(_custom_role("restoreDrill")["roleName"])
    # Only the drill role writes or deletes, and it is assigned on the scratch group only.
    for symbol in ("recoveryChecker", "restoreSource"):
        assert not any(a.endswith(("/write", "/delete")) for a in RECOVERY_ROLE_ACTIONS[symbol])


def test_recovery_checker_and_metrics_on_each_protected_resource_only() -> None:
    main = template(INFRA / "main.bicep")
    for param in ("protectedCosmosAccountIds", "protectedStorageAccountIds"):
        assert main.parameters[param]["default"] == []
        assert param in _azd_parameters()
    assert main.parameters["drillScratchResourceGroup"]["default"] == ""
    assert "drillScratchResourceGroup" in _azd_parameters()
    text = (INFRA / "main.bicep").read_text()
    block = _module_blocks(text, "modules/recovery-access.bicep")
    assert len(block) == 1
    assert "[for id in concat(protectedCosmosAccountIds, protectedStorageAccountIds):" in block[0]
    assert "scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])" in block[0]
    assert "roleDefinitionId: customRoles.outputs.recoveryCheckerId" in block[0]
    m = template(INFRA / "modules" / "recovery-access.bicep")
    by_symbol = {r.symbol: r for r in m.resources}
    assert {r.type for r in m.resources if r.existing} == {
        "Microsoft.DocumentDB/databaseAccounts", "Microsoft.Storage/storageAccounts"}
    assert by_symbol["cosmosChecker"].body["scope"] == "cosmos"
    assert by_symbol["storageChecker"].body["scope"] == "storage"
    assert by_symbol["cosmosMetrics"].body["scope"] == "cosmos"
    assert _role_guids(m, by_symbol["cosmosMetrics"]) == {"43d0d8ad-25c7-4714-9337-8ba259a9fe05"}
    assert "isCosmos" in _condition(m, "cosmosMetrics")


def test_drill_writes_only_in_the_scratch_group_and_only_when_configured() -> None:
    text = (INFRA / "main.bicep").read_text()
    drill = re.search(r"^module drillAccess 'modules/drill-access.bicep' = (.*?)^\}$", text,
                      re.M | re.S)
    assert drill, "main.bicep does not deploy modules/drill-access.bicep"
    assert drill.group(1).startswith("if (!empty(drillScratchResourceGroup))")
    assert "scope: resourceGroup(drillScratchResourceGroup)" in drill.group(1)
    assert "roleDefinitionId: customRoles.outputs.restoreDrillId" in drill.group(1)
    source = re.search(
        r"^module restoreSourceAccess 'modules/restore-source-access.bicep' = (.*?)^\}$", text,
        re.M | re.S)
    assert source, "main.bicep does not deploy modules/restore-source-access.bicep"
    assert source.group(1).startswith(
        "if (!empty(drillScratchResourceGroup) && !empty(protectedCosmosAccountIds))")
    assert "roleDefinitionId: customRoles.outputs.restoreSourceId" in source.group(1)
    # Exactly one resource-group-scope assignment in the whole deployment: the scratch group.
    whole_group = [
        (t.path.name, r.symbol)
        for t, r in deployed("Microsoft.Authorization/roleAssignments")
        if t.scope == "resourceGroup" and "scope" not in r.body
    ]
    assert whole_group == [("drill-access.bicep", "scratchGroup")]
    subscription_wide = {
        (t.path.name, r.symbol)
        for t, r in deployed("Microsoft.Authorization/roleAssignments")
        if t.scope == "subscription" and "scope" not in r.body
    }
    others = {(f, symbol) for f, symbol in subscription_wide if f != "quota-access.bicep"}
    assert others == SUBSCRIPTION_SCOPE_EXCEPTIONS


def test_storage_account_name_follows_azure_naming_rules() -> None:
    # checkov's CKV_AZURE_43 renders the interpolated name inconsistently, so it is skipped in
    # storage.bicep and checked here: 'stpitcrew' + uniqueString() (13 lowercase alphanumerics)
    # is 22 lowercase letters and digits, within Azure's 3-24.
    main = (Path(__file__).resolve().parents[2] / "infra" / "main.bicep").read_text()
    assert "name: 'stpitcrew${token}'" in main
    assert "var token = toLower(uniqueString(" in main
    assert re.fullmatch(r"[a-z0-9]{3,24}", "stpitcrew" + "a" * 13)
