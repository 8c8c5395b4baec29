"""The one record schema of ICS operations (Apache Arrow), and its columnar builder.

Every door into Interlock (a capture file, live traffic, the firewall, the range) produces rows of
this schema; ``docs/records.md`` documents each column. Rows are gathered column by column in
plain lists and turned into Arrow record batches every ``batch_size`` rows, so memory stays flat.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
# The protocol of the decoder's connection records (a TCP SYN without ACK, a RST answering
# one): not an ICS operation. Consumers that model ICS traffic (inventory, baseline, firewall
# learning) leave these rows out; only rules with ``service: tcp`` see them.
CONNECTION_PROTOCOL = "tcp"


def ics_only(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch without connection records (returned as is when it holds none)."""
    if batch.num_rows == 0:
        return batch
    keep = pc.fill_null(pc.not_equal(batch.column("protocol"), CONNECTION_PROTOCOL), True)
    if pc.all(keep).as_py():
        return batch
    return batch.filter(keep)


Endpoints = tuple[str, str, int, int, str]  # src, dst, sport, dport, transport of one direction
_ENDPOINT_COLUMNS = ("src", "dst", "sport", "dport", "transport")
_ROW = ("frame", "ts", "endpoints", *Operation._fields)
# Arrow type of each endpoint column's values (the dictionary's values for dictionary columns).
_VALUE_TYPES = {
    name: t.value_type if pa.types.is_dictionary(t) else t
    for name, t in ((n, SCHEMA.field(n).type) for n in _ENDPOINT_COLUMNS)
}


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
        # Nothing here makes reference cycles, but the Python objects it makes would set off
        # collections that walk every row still held: a third of the flush time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._flush()
        finally:
            if collecting:
                gc.enable()

    def _flush(self) -> pa.RecordBatch:
        columns: dict[str, Any] = dict(zip(_ROW, zip(*self._rows, strict=True), strict=True))
        self._rows = []
        ends = columns.pop("endpoints")
        index = {e: i for i, e in enumerate(dict.fromkeys(ends))}
        take = pa.array(list(map(index.__getitem__, ends)), pa.int32())
        for name, values in zip(_ENDPOINT_COLUMNS, zip(*index, strict=True), strict=True):
            columns[name] = pa.array(values, _VALUE_TYPES[name]).take(take)
        columns["ts"] = np.round(np.array(columns["ts"], np.float64) * 1e6).astype(np.int64)
        encode = _encode_detail
        columns["detail"] = [None if d is None else encode(d) for d in columns["detail"]]
        arrays = [
            data if isinstance(data, pa.Array) else pa.array(data, f.type)
            for f, data in zip(SCHEMA, map(columns.__getitem__, COLUMNS), strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def _jsonable(value: object) -> object:
    """Bytes in details become hex; anything else unknown becomes its text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def _detail_encoder() -> Callable[[Any], str]:
    """``json.dumps(d, separators=(",", ":"), default=_jsonable)``, without building an encoder
    per call: the C encoder that ``json.JSONEncoder.encode`` uses when it can, made once.
    Falls back to the public encoder when this Python's C encoder differs."""
    public = json.JSONEncoder(separators=(",", ":"), default=_jsonable).encode
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]

        chunks = c_make_encoder(None, _jsonable, encode_basestring_ascii, None, ":", ",", False,
                                False, True)
        join = "".join

        def fast(d: Any) -> str:
            return join(chunks(d, 0))

        sample = {"a": [1, 2.5, None, True, "é\"", float("nan")], "b": {"c": b"\x01"}, "d": (1,)}
        if fast(sample) == public(sample):
            return fast
    except Exception:  # any difference in the private API: use the public one
        pass
    return public


_encode_detail = _detail_encoder()
