"""An entity-group transaction on the wire: the `$batch` envelope written and its answer read
without the standard library's email package.

azure-data-tables builds a transaction's operations itself (entity serialization, URLs, match
headers: its `TableBatchOperations`), then hands azure-core a multipart request. azure-core
flattens that with the email generator and parses the answer with the email parser, and
applies the part policies on a thread pool it creates for each request, twice. Profiled on
this host, that was 0.4-0.7 ms of CPU a row, four fifths of a transaction's cost, and 85 % of
`POST /api/events` (bench/README.md). The format itself (OData `$batch`: one changeset of
`application/http` parts) is a few joins, so:

- the operations are still built by the SDK's own `TableBatchOperations`;
- the envelope is written here, byte for byte what azure-core writes (a test compares them);
- the request goes through the table client's own pipeline (its credential, retries,
  transport, and the benches' counting transport);
- only an answer where every operation succeeded is read here. Anything else goes to the SDK:
  a changeset is atomic, so a refused one was not applied, and it is sent again through
  `TableClient.submit_transaction`, whose error (TableTransactionError naming the failed
  operation, RequestTooLargeError, ResourceNotFoundError for a missing table) is the one
  callers handle. A server error is raised as it is, not sent again (the pipeline's retry
  policy already has): its transaction may have been applied.

Measured by bench/transactions.py: 0.1 ms of CPU a row instead of 0.5-0.7, three times the
rows a second.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.rest import HttpRequest, HttpResponse
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

_CRLF = b"\r\n"
# The SDK's own fallback is used when its internals are not the ones this module was written
# against (another azure-data-tables than the lock's): slower, never wrong.
_fallback_logged = False


def submit(table: TableClient, operations: Sequence[tuple[Any, ...]]) -> list[Mapping[str, Any]]:
    """One transaction of `operations` (the tuples `TableClient.submit_transaction` takes);
    each operation's result metadata (its new `etag`) in order, as the SDK returns them."""
    if not operations:
        return []
    results = attempt(table, operations)
    if results is not None:
        return results
    # Refused, so not applied: the SDK sends it again and raises its own error for it.
    return list(table.submit_transaction(list(operations)))


def attempt(table: TableClient, operations: Sequence[tuple[Any, ...]]
            ) -> list[Mapping[str, Any]] | None:
    """The transaction's results when it was applied; None when it was not (refused by the
    service, or the SDK's internals are not the ones expected and nothing was sent). Raises
    when the outcome is unknown (a server error after the pipeline's retries, a lost or
    unreadable answer): it may have been applied."""
    try:
        parts = _operations(table, operations)
        batch_url = f"{table.scheme}://{table._primary_hostname}/$batch"
        pipeline = table._client
        api_version = table.api_version
    except (ImportError, AttributeError) as exc:
        _log_fallback(exc)
        return None

    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    batch = f"batch_{uuid.uuid4()}"
    body = envelope(parts, batch=batch, changeset=f"changeset_{uuid.uuid4()}",
                    date=formatdate(usegmt=True))  # the SDK's date format
    request = HttpRequest("POST", batch_url, headers={
        "x-ms-version": api_version,
        "DataServiceVersion": "3.0",
        "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={batch}",
        "Accept": "application/json",
    }, content=body)
    response: HttpResponse = pipeline.send_request(request, stream=True)
    response.read()
    if response.status_code == 202:
        return read_answer(response, expected=len(operations))
    if response.status_code >= 500:
        raise HttpResponseError(message="the table transaction failed", response=response)
    return None


def _operations(table: TableClient, operations: Sequence[tuple[Any, ...]]) -> list[HttpRequest]:
    from azure.data.tables._table_batch import TableBatchOperations

    batch = TableBatchOperations(
        config=table._client._config,
        endpoint=f"{table.scheme}://{table._primary_hostname}",
        table_name=table.table_name,
        is_cosmos_endpoint=table._cosmos_endpoint,
    )
    for operation in operations:
        batch.add_operation(operation)
    return list(batch.requests)


def _log_fallback(exc: BaseException) -> None:
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        log.warning("table transactions go through the SDK's slower path: %s", exc)


def envelope(parts: Sequence[HttpRequest], *, batch: str, changeset: str, date: str) -> bytes:
    """The `$batch` body: one changeset holding each operation as an `application/http` part,
    the request line, its headers, the two date headers the SDK's StorageHeadersPolicy adds
    to each, and its body. (http.client, which azure-core serializes with, sends a str body
    as ISO-8859-1; the SDK's JSON is ASCII.)"""
    out = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, part in enumerate(parts):
        lines = [f"--{changeset}\r\nContent-Type: application/http\r\n"
                 f"Content-Transfer-Encoding: binary\r\nContent-ID: {index}\r\n\r\n"
                 f"{part.method} {part.url} HTTP/1.1\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in part.headers.items()
                  if name.lower() not in ("x-ms-date", "date")]
        lines.append(f"x-ms-date: {date}\r\nDate: {date}\r\n\r\n")
        out.append("".join(lines).encode("latin-1"))
        content = part.content
        if isinstance(content, str):
            content = content.encode("latin-1")
        out.append((content or b"") + _CRLF)
    out.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n".encode())
    return b"".join(out)


def read_answer(response: HttpResponse, *, expected: int) -> list[Mapping[str, Any]] | None:
    """Each operation's metadata when all `expected` succeeded; None when one was refused (the
    service then answers that one alone). Raises HttpResponseError when the answer has
    another shape: the transaction may have been applied, so it must not be sent again."""
    from azure.core.exceptions import HttpResponseError

    try:
        statuses = _http_parts(response.headers.get("Content-Type", ""), response.content)
    except ValueError as exc:
        raise HttpResponseError(
            message=f"the table transaction's answer could not be read: {exc}",
            response=response) from None
    if any(not 200 <= status < 300 for status, _ in statuses):
        return None
    if len(statuses) != expected:
        raise HttpResponseError(
            message=f"the table transaction answered {len(statuses)} operations of {expected}",
            response=response)
    return [{"etag": headers["etag"]} if "etag" in headers else {} for _, headers in statuses]


def _http_parts(content_type: str, body: bytes) -> list[tuple[int, dict[str, str]]]:
    """(status, headers by lower-case name) of each `application/http` part of a multipart
    answer, changesets opened."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise ValueError(f"not a multipart answer: {content_type[:100]!r}")
    found: list[tuple[int, dict[str, str]]] = []
    for part in _parts(body, boundary):
        mime, _, payload = part.partition(_CRLF + _CRLF)
        headers = _headers(mime)
        inner = _boundary(headers.get("content-type", ""))
        if inner is not None:
            found += _http_parts(headers["content-type"], payload)
            continue
        status_line, _, rest = payload.partition(_CRLF)
        fields = status_line.split(b" ", 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise ValueError(f"not an HTTP answer: {status_line[:100]!r}")
        found.append((int(fields[1]), _headers(rest.partition(_CRLF + _CRLF)[0])))
    return found


def _boundary(content_type: str) -> str | None:
    kind, _, parameters = content_type.partition(";")
    if kind.strip().lower() != "multipart/mixed":
        return None
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"')
    return None


def _parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode("ascii")
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise ValueError("the multipart answer is not closed")
    # pieces[0] is the preamble; each part runs from the CRLF after its delimiter to the CRLF
    # before the next.
    return [piece.removeprefix(_CRLF).removesuffix(_CRLF) for piece in pieces[1:-1]]


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(_CRLF):
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers
