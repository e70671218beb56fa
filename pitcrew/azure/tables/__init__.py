"""Adapters over Azure Table storage: the state store, the audit trail, the outbox, rejected
events and the failed-message store. Each implements a port (pitcrew/ports.py,
pitcrew/deadletter/ports.py); the engine never sees a TableClient.

The Tables SDK is imported inside the methods that use it: pitcrew's modules load without it,
so a trigger that needs no storage (and the function app's indexing) never pays for it."""
