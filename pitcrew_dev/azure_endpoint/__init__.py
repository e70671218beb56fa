"""pitcrew's local Azure endpoint: the Azure services pitcrew changes, served over HTTPS on
127.0.0.1 so the production adapters run unchanged through the real SDK clients.

Start it with `start_local_azure()` (background thread) or `python -m pitcrew_dev.azure_endpoint`.

URL shapes (MAIN = LocalAzure.url, e.g. https://127.0.0.1:51234):

    Key Vault    https://127.0.0.1:{vault port}/secrets/...   one port per vault, see
                 LocalAzure.vault_url(name); Key Vault's SDK parses secret ids as
                 https://host[:port]/secrets/name[/version], so vaults can't share a port
    ARM          MAIN/subscriptions/{sub}/resourceGroups/{rg}/providers/...   (arm.py)
                 mgmt clients: base_url=MAIN
    Cosmos DB    MAIN/cosmos/{account}/ and MAIN/cosmos/{account}/dbs   master-key auth
    Storage      MAIN/storage/{account}/blob/?restype=service&comp=properties   SharedKey
                 BlobServiceClient(account_url=MAIN/storage/{account}/blob,
                                   credential={"account_name": account, "account_key": key})
    Service Bus  MAIN/servicebus/{namespace}[/{entity}]   SAS, sr = that URL (or a prefix of it)
    Event Hubs   MAIN/eventhubs/{namespace}[/{eventhub}]  SAS
    Inspection   MAIN/_local/health | vaults | resources | regenerations | operations (no auth)

Clients (credential=LocalCredential(); each service accepts only a token for its own
audience, as Azure does - see credential.py):

    SecretClient(vault_url, LocalCredential(), connection_verify=ca_path,
                 verify_challenge_resource=False)
    CosmosDBManagementClient(LocalCredential(), sub, base_url=MAIN, connection_verify=ca_path)
    (likewise StorageManagementClient, ServiceBusManagementClient, EventHubManagementClient,
     WebSiteManagementClient)

See docs/local-azure.md for the details and the choices behind them.
"""

from pitcrew_dev.azure_endpoint.config import EndpointConfig, ResourceSeed, SecretSeed
from pitcrew_dev.azure_endpoint.credential import LocalCredential
from pitcrew_dev.azure_endpoint.server import LocalAzure, main, start_local_azure

__all__ = [
    "EndpointConfig",
    "LocalAzure",
    "LocalCredential",
    "ResourceSeed",
    "SecretSeed",
    "main",
    "start_local_azure",
]
