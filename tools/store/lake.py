"""The cost lake: Hive-partitioned Parquet files queried in-process with DuckDB.

Layout: ``<root>/kind=<cost|usage>/source=<source>/billing_period=<YYYY-MM>/account=<id>/data.parquet``.
A partition is written to a temporary file beside it and renamed into place, so a reader sees the old
file or the new one, never half of one, and a restated period replaces its partition atomically.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb

from tools.store.schema import COST_FACT_COLUMNS, USAGE_FACT_COLUMNS

KINDS = ("cost", "usage")

#: DuckDB resource limits: ingestion streams and spills to disk rather than growing without bound.
MEMORY_LIMIT = os.environ.get("FINOPS_DUCKDB_MEMORY_LIMIT", "512MB")
THREADS = int(os.environ.get("FINOPS_DUCKDB_THREADS", "2"))


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The single row of ``sql`` (DuckDB 2 wants every result consumed before the next statement)."""
    rows = con.execute(sql).fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"expected one row, got {len(rows)}: {sql[:200]}")
    return tuple(rows[0])


def sql_string(value: str) -> str:
    """A SQL string literal for DuckDB (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class PartitionKey:
    kind: str
    source: str
    billing_period: str
    account: str

    def relative_dir(self) -> Path:
        return Path(
            f"kind={self.kind}",
            f"source={quote(self.source, safe='')}",
            f"billing_period={self.billing_period}",
            f"account={quote(self.account or '_none', safe='')}",
        )


class Lake:
    def __init__(self, root: Path) -> None:
        self.root = root

    def partition_path(self, key: PartitionKey) -> Path:
        return self.root / key.relative_dir() / "data.parquet"

    def files(self, kind: str) -> list[Path]:
        base = self.root / f"kind={kind}"
        if not base.exists():
            return []
        return sorted(base.glob("source=*/billing_period=*/account=*/data.parquet"))

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer at a time (readers never wait): an exclusive lock file under the lake root."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".write.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def tmp_dir(self) -> Path:
        path = self.root / ".tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def connect(self, *, for_ingest: bool = False) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with ``cost_facts`` and ``usage_facts`` views over the lake."""
        con = duckdb.connect(":memory:")
        con.execute(f"SET memory_limit={sql_string(MEMORY_LIMIT)}")
        con.execute(f"SET threads={THREADS}")
        if for_ingest:
            con.execute(f"SET temp_directory={sql_string(str(self.tmp_dir()))}")
            con.execute("SET preserve_insertion_order=false")
        self.create_views(con)
        return con

    def create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        for kind, columns in (("cost", COST_FACT_COLUMNS), ("usage", USAGE_FACT_COLUMNS)):
            files = self.files(kind)
            select_cols = ", ".join(f"CAST({name} AS {typ}) AS {name}" for name, typ in columns)
            if files:
                listing = "[" + ", ".join(sql_string(str(f)) for f in files) + "]"
                source = f"read_parquet({listing}, union_by_name=true)"
                con.execute(f"CREATE OR REPLACE VIEW {kind}_facts AS SELECT {select_cols} FROM {source}")
            else:
                empty = ", ".join(f"CAST(NULL AS {typ}) AS {name}" for name, typ in columns)
                con.execute(f"CREATE OR REPLACE VIEW {kind}_facts AS SELECT {empty} WHERE false")

    def write_partition(self, con: duckdb.DuckDBPyConnection, key: PartitionKey, select_sql: str) -> int:
        """Write the rows of ``select_sql`` as partition ``key``, replacing it atomically. Returns rows."""
        final = self.partition_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".data.{uuid.uuid4().hex}.parquet.tmp")
        try:
            copied = con.execute(
                f"COPY ({select_sql}) TO {sql_string(str(tmp))} "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
            ).fetchall()
            rows = int(copied[0][0]) if copied else 0
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return rows

    def remove_partition(self, key: PartitionKey) -> None:
        path = self.partition_path(key)
        if path.exists():
            path.unlink()
