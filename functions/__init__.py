"""One Blueprint per area. Triggers are thin: binding object -> plain data -> one call into
pitcrew -> an exception (the platform retries) or an HttpResponse. No business logic here.

Each trigger imports its entry point inside its body (`# lazy: cold start`): indexing the app
loads none of pitcrew, so none of the Azure SDKs, pydantic, PyYAML or httpx."""
