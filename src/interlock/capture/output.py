"""Writers for record batches: JSON lines, Parquet, CSV.

JSON lines is the contract outside tools rely on (``docs/records.md``): one object per
operation, null fields left out, ``ts`` as epoch seconds, ``detail`` as a nested object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from interlock.capture.records import SCHEMA

FORMATS = ("jsonl", "parquet", "csv")


class Writer(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


def _plain(batch: pa.RecordBatch) -> dict[str, list[Any]]:
    """Columns as Python lists with ts in epoch seconds and dictionaries decoded."""
    cols: dict[str, list[Any]] = {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if name == "ts":
            micros = pc.cast(col, pa.int64()).to_numpy()
            cols[name] = (micros / 1e6).tolist()
        elif pa.types.is_dictionary(col.type):
            cols[name] = col.cast(pa.string()).to_pylist()
        else:
            cols[name] = col.to_pylist()
    return cols


class JsonlWriter:
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, batch: pa.RecordBatch) -> None:
        cols = _plain(batch)
        names = list(cols)
        dumps = json.dumps
        lines = []
        for row in zip(*cols.values(), strict=True):
            obj = {k: v for k, v in zip(names, row, strict=True) if v is not None}
            if "detail" in obj:
                obj["detail"] = json.loads(obj["detail"])
            lines.append(dumps(obj, separators=(",", ":")))
        if lines:
            self.out.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self.out.flush()


class ParquetWriter:
    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(str(path), SCHEMA, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()


class CsvWriter:
    """CSV has no lists: ``values`` becomes space-separated numbers."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.writer: pacsv.CSVWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        cols = []
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            if name == "values":
                text = [None if v is None else " ".join(f"{x:g}" for x in v) for v in col.to_pylist()]
                cols.append(pa.array(text, pa.string()))
            elif pa.types.is_dictionary(col.type):
                cols.append(col.cast(pa.string()))
            else:
                cols.append(col)
        table = pa.Table.from_arrays(cols, names=batch.schema.names)
        if self.writer is None:
            self.writer = pacsv.CSVWriter(self.out, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.out.flush()
