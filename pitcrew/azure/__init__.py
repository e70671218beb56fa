"""Adapters over the Azure SDKs, one module per service. SDKs are imported inside functions."""
