"""pitcrew: keeps a mission-critical Azure workload serviced while it runs.

The engine is plain Python and never imports azure.functions; the Azure SDKs are imported
lazily, on first use, because the function app's cold start is a feature.
"""

__version__ = "0.1.0"
