"""One Blueprint per area. Triggers are thin: binding object -> plain data -> one call into
pitcrew -> an exception (the platform retries) or an HttpResponse. No business logic here."""
