"""Entity-group transactions alone: rows/s and CPU per row through the SDK's
`TableClient.submit_transaction` (the baseline) and through `pitcrew.azure.tables.transactions.
submit` (pitcrew.azure.tables.changeset: the same operations and pipeline, the envelope written
and the answer read without the `email` package), on one fresh Azurite, alternated in rounds.

    .venv/bin/python bench/transactions.py [--rows 50] [--transactions 40] [--rounds 3]

Asserts only that every row was written.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from common import emit, fresh_azurite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50, help="rows a transaction")
    parser.add_argument("--transactions", type=int, default=40, help="transactions a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from azure.data.tables import TableServiceClient

    from pitcrew.azure.tables import transactions

    with fresh_azurite() as azurite:
        table = TableServiceClient.from_connection_string(
            azurite.connection_string).create_table("benchtx")
        for n in range(500):  # warm the emulator (node compiles as it goes)
            table.create_entity({"PartitionKey": "warm", "RowKey": f"{n:05d}"})

        def operations() -> list[tuple[str, dict[str, object]]]:
            partition = uuid.uuid4().hex
            return [("create", {"PartitionKey": partition, "RowKey": f"{n:04d}",
                                "Data": "x" * 400, "N": n}) for n in range(args.rows)]

        def timed(submit: object) -> tuple[float, float]:
            batches = [operations() for _ in range(args.transactions)]
            cpu, start = time.process_time(), time.perf_counter()
            for batch in batches:
                assert len(submit(table, batch)) == args.rows  # type: ignore[operator]
            rows = args.rows * args.transactions
            return rows / (time.perf_counter() - start), (time.process_time() - cpu) / rows

        sdk: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            sdk.append(timed(lambda t, ops: t.submit_transaction(ops)))
            ours.append(timed(transactions.submit))

    size = f"{args.rows} rows a transaction, median of {args.rounds} rounds"
    sdk_rate = statistics.median(rate for rate, _ in sdk)
    emit("transactions: TableClient.submit_transaction (baseline)", sdk_rate, "rows/s",
         sdk_rate, note=size)
    emit("transactions: pitcrew transactions.submit", statistics.median(r for r, _ in ours),
         "rows/s", sdk_rate, note=size)
    emit("transactions: CPU a row, submit_transaction", 1000 * statistics.median(
        c for _, c in sdk), "ms")
    emit("transactions: CPU a row, transactions.submit", 1000 * statistics.median(
        c for _, c in ours), "ms")


if __name__ == "__main__":
    main()
