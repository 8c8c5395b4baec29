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


class RecordBuilder:
    """Collects operations column by column; ``flush()`` returns an Arrow batch."""

    def __init__(self, batch_size: int = 65536) -> None:
        self.batch_size = batch_size
        self._cols: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.rows = 0

    def add(
        self,
        frame: int,
        ts: float,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        transport: str,
        op: Operation,
    ) -> None:
        c = self._cols
        c["frame"].append(frame)
        c["ts"].append(round(ts * 1_000_000))
        c["src"].append(src)
        c["dst"].append(dst)
        c["sport"].append(sport)
        c["dport"].append(dport)
        c["transport"].append(transport)
        c["protocol"].append(op.protocol)
        c["direction"].append(op.direction.value)
        c["unit"].append(op.unit)
        c["transaction"].append(op.transaction)
        c["op_class"].append(op.op_class.value)
        c["function_code"].append(op.function_code)
        c["function"].append(op.function)
        c["address"].append(op.address)
        c["count"].append(op.count)
        c["values"].append(op.values)
        c["object"].append(op.object)
        c["status"].append(op.status)
        c["malformed"].append(op.malformed)
        c["detail"].append(
            None if op.detail is None else json.dumps(op.detail, separators=(",", ":"), default=_jsonable)
        )
        self.rows += 1

    def full(self) -> bool:
        return self.rows >= self.batch_size

    def flush(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        arrays = []
        for f in SCHEMA:
            data = self._cols[f.name]
            if pa.types.is_dictionary(f.type):
                arrays.append(pa.array(data, pa.string()).dictionary_encode().cast(f.type))
            else:
                arrays.append(pa.array(data, f.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)
        self._cols = {name: [] for name in COLUMNS}
        self.rows = 0
        return batch


def _jsonable(value: object) -> object:
    """Bytes in details become hex; anything else unknown becomes its text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)
