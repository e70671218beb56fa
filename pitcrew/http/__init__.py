"""What pitcrew answers over HTTP, independent of the Functions binding types: the plain
`HttpResult`, the one error renderer (`errors.http_errors`), request models (`models`) and
paging (`paging`). The triggers in functions/ only translate bindings to and from these."""
