"""Development only: the local Functions host, Azurite management and the local Azure endpoint.

Nothing here is deployed (see .funcignore); the production code never imports it.
"""
