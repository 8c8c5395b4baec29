"""The column-wise JSON lines writer and the record builder give what the plain per-row code
gave: the reference implementations below are the code they replaced."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.capture.output import JsonlWriter
from interlock.capture.records import SCHEMA, RecordBuilder, _jsonable
from interlock.protocols.base import Direction, OpClass, Operation


def reference_jsonl(batch: pa.RecordBatch) -> str:
    """One dict per row through ``json.dumps``: the writer's specification."""
    cols: dict[str, list[Any]] = {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if name == "ts":
            cols[name] = (pc.cast(col, pa.int64()).to_numpy() / 1e6).tolist()
        elif pa.types.is_dictionary(col.type):
            cols[name] = col.cast(pa.string()).to_pylist()
        else:
            cols[name] = col.to_pylist()
    lines = []
    for row in zip(*cols.values(), strict=True):
        obj = {k: v for k, v in zip(cols, row, strict=True) if v is not None}
        if "detail" in obj:
            obj["detail"] = json.loads(obj["detail"])
        lines.append(json.dumps(obj, separators=(",", ":")))
    return "".join(line + "\n" for line in lines)


def reference_flush(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """Column lists through ``pa.array`` one by one: the builder's specification."""
    names = ("frame", "ts", "endpoints", *Operation._fields)
    columns: dict[str, Any] = dict(zip(names, zip(*rows, strict=True), strict=True))
    ends = columns.pop("endpoints")
    for i, name in enumerate(("src", "dst", "sport", "dport", "transport")):
        columns[name] = [e[i] for e in ends]
    columns["ts"] = [round(t * 1_000_000) for t in columns["ts"]]
    columns["detail"] = [None if d is None else json.dumps(d, separators=(",", ":"),
                                                           default=_jsonable)
                         for d in columns["detail"]]
    arrays = []
    for f in SCHEMA:
        if pa.types.is_dictionary(f.type):
            arrays.append(pa.array(columns[f.name], pa.string()).dictionary_encode().cast(f.type))
        else:
            arrays.append(pa.array(columns[f.name], f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def write(batch: pa.RecordBatch, rows: int = JsonlWriter.ROWS) -> str:
    out = io.StringIO()
    writer = JsonlWriter(out)
    writer.ROWS = rows
    writer.write(batch)
    return out.getvalue()


floats = st.one_of(
    st.integers(0, 65535).map(float),
    st.integers(-(2**60), 2**60).map(float),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-4, 9.99e-5, 1e15, 1e16, 1e15 - 1, 0.1, 5e-324, 1.5e300]),
)
texts = st.text(max_size=6)
small = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))
details = st.one_of(
    st.none(),
    st.dictionaries(texts, st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), floats, texts, st.binary(max_size=4)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=6), max_size=4),
)
ops = st.builds(
    Operation,
    st.sampled_from(["modbus", "dnp3", "ü"]),
    st.sampled_from(list(Direction)),
    st.sampled_from(list(OpClass)),
    small, st.one_of(st.none(), texts), small, small, small, small,
    st.one_of(st.none(), st.lists(floats, max_size=5).map(tuple)),
    st.one_of(st.none(), texts), st.one_of(st.none(), texts), st.one_of(st.none(), texts),
    details,
)
endpoints = st.tuples(st.sampled_from(["10.0.0.1", "::1", 'a"\\é']), st.just("10.0.0.2"),
                      st.integers(0, 65535), st.integers(0, 65535), st.sampled_from(["tcp", "udp"]))
rows = st.lists(st.tuples(st.integers(1, 2**40), st.floats(0, 4e9), endpoints, ops),
                min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(rows, st.integers(0, 3))
def test_builder_and_jsonl_match_the_reference(rows: list[Any], cut: int) -> None:
    builder = RecordBuilder()
    for frame, ts, ends, op in rows:
        builder.add(frame, ts, ends, op)
    batch = builder.flush()
    assert batch is not None
    flat = [(frame, ts, ends, *op) for frame, ts, ends, op in rows]
    reference = reference_flush(flat)
    assert batch.schema == reference.schema
    assert repr(batch.to_pylist()) == repr(reference.to_pylist())  # NaN equal to NaN
    assert write(batch) == reference_jsonl(batch)
    assert write(batch, rows=2) == reference_jsonl(batch)  # formatted a slice at a time
    part = batch.slice(min(cut, batch.num_rows - 1))  # a slice has offsets into its lists
    assert write(part) == reference_jsonl(part)
