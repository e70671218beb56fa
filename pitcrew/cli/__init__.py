"""The `pitcrew` command: `main` (the typer app and entry point), `client` (the operator's client
for the app's HTTP API) and one module per area (dev, policy, audit, rotation, deadletter).

Area modules import `client` and `output`, never `main`; `main` imports the areas.
"""
