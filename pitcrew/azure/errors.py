"""How the engine reads an Azure SDK failure without importing the SDK itself."""

from __future__ import annotations


def is_transient(exc: BaseException) -> bool:
    """Will Azure likely answer this call next time: a connection error, 408, 429 or 5xx."""
    from azure.core.exceptions import (  # lazy: SDK on first use (cold start)
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError
                  | TimeoutError):
        return True
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        return status is not None and (status >= 500 or status in (408, 429))
    return False
