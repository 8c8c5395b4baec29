"""The one record schema of ICS operations (Apache Arrow), and its columnar builder.

Every door into Interlock (a capture file, live traffic, the firewall, the range) produces rows of
this schema; ``docs/records.md`` documents each column. Rows are gathered column by column in
plain lists and turned into Arrow record batches every ``batch_size`` rows, so memory stays flat.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from interlock.protocols.base import Operation

SCHEMA = pa.schema(
    [
        pa.field("frame", pa.uint64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("src", pa.string(), nullable=False),
        pa.field("dst", pa.string(), nullable=False),
        pa.field("sport", pa.uint16(), nullable=False),
        pa.field("dport", pa.uint16(), nullable=False),
        pa.field("transport", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("protocol", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("direction", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("unit", pa.int32()),
        pa.field("transaction", pa.int64()),
        pa.field("op_class", pa.dictionary(pa.int8(), pa.string()), nullable=False),
        pa.field("function_code", pa.int32()),
        pa.field("function", pa.string()),
        pa.field("address", pa.int64()),
        pa.field("count", pa.int32()),
        pa.field("values", pa.list_(pa.float64())),
        pa.field("object", pa.string()),
        pa.field("status", pa.string()),
        pa.field("malformed", pa.string()),
        pa.field("detail", pa.string()),  # JSON text: protocol-specific extras
    ]
)
COLUMNS = SCHEMA.names


Endpoints = tuple[str, str, int, int, str]  # src, dst, sport, dport, transport of one direction
_ENDPOINT_COLUMNS = ("src", "dst", "sport", "dport", "transport")
_ROW = ("frame", "ts", "endpoints", *Operation._fields)


class RecordBuilder:
    """Collects rows as tuples (one append each); ``flush()`` transposes them into a batch.

    A row holds its flow's ``Endpoints`` tuple, shared by every row of that flow direction;
    flush turns the distinct tuples into a small table and takes from it, so the five flow
    columns cost one index per row instead of five Python values.
    """

    def __init__(self, batch_size: int = 65536) -> None:
        self.batch_size = batch_size
        self._rows: list[tuple[Any, ...]] = []

    @property
    def rows(self) -> int:
        return len(self._rows)

    def add(self, frame: int, ts: float, endpoints: Endpoints, op: Operation) -> None:
        self._rows.append((frame, ts, endpoints, *op))

    def flush(self) -> pa.RecordBatch | None:
        if not self._rows:
            return None
        columns: dict[str, Any] = dict(zip(_ROW, zip(*self._rows, strict=True), strict=True))
        self._rows = []
        index: dict[Endpoints, int] = {}
        take = pa.array([index.setdefault(e, len(index)) for e in columns.pop("endpoints")], pa.int32())
        for name, values in zip(_ENDPOINT_COLUMNS, zip(*index, strict=True), strict=True):
            columns[name] = pa.array(values, SCHEMA.field(name).type.value_type
                                     if pa.types.is_dictionary(SCHEMA.field(name).type)
                                     else SCHEMA.field(name).type).take(take)
        columns["ts"] = [round(t * 1_000_000) for t in columns["ts"]]
        columns["detail"] = [
            None if d is None else json.dumps(d, separators=(",", ":"), default=_jsonable)
            for d in columns["detail"]
        ]
        arrays = []
        for f in SCHEMA:
            data = columns[f.name]
            if pa.types.is_dictionary(f.type):
                if not isinstance(data, pa.Array):
                    data = pa.array(data, pa.string())
                arrays.append(data.dictionary_encode().cast(f.type))
            elif isinstance(data, pa.Array):
                arrays.append(data)
            else:
                arrays.append(pa.array(data, f.type))
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def _jsonable(value: object) -> object:
    """Bytes in details become hex; anything else unknown becomes its text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)
