"""Writers for record batches: JSON lines, Parquet, CSV.

JSON lines is the contract outside tools rely on (``docs/records.md``): one object per
operation, null fields left out, ``ts`` as epoch seconds, ``detail`` as a nested object.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from interlock.capture.records import SCHEMA

if TYPE_CHECKING:
    import pyarrow.csv as pacsv

FORMATS = ("jsonl", "parquet", "csv")


class Writer(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


def _float_json(x: float) -> str:
    """A float as ``json.dumps`` writes it."""
    if math.isfinite(x):
        return float.__repr__(x)
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")


def _floats_json(values: pa.Array) -> pa.Array:
    """JSON text of each double (nulls stay null), as ``json.dumps`` writes them.

    Arrow's cast to string writes the same shortest round-trip digits as Python's ``repr``
    but not the same notation: Python writes ``170.0`` where Arrow writes ``170``, and switches
    to exponents at other magnitudes. So Arrow's text is kept for plain decimals in Python's
    fixed-notation range (adding ``.0`` to integral ones) and Python formats the rest.
    """
    import pyarrow.compute as pc

    values = values.cast(pa.float64())
    text = values.cast(pa.string())
    magnitude = pc.abs(values)
    python = pc.or_kleene(
        pc.or_kleene(pc.match_substring(text, "e"), pc.invert(pc.is_finite(values))),
        pc.and_kleene(pc.less(magnitude, 1e-4), pc.not_equal(magnitude, 0.0)),
    )
    text = pc.if_else(pc.match_substring(text, "."), text,
                      pc.binary_join_element_wise(text, ".0", ""))
    if pc.any(python).as_py():
        out = text.to_pylist()
        xs = values.to_pylist()
        for i in pc.indices_nonzero(python.fill_null(False)).to_pylist():
            out[i] = _float_json(xs[i])
        text = pa.array(out, pa.string())
    return text


def _strings_json(col: pa.Array) -> pa.Array:
    """JSON text of each string (nulls stay null): each distinct string is escaped once."""
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    texts = [None if v is None else encode_basestring_ascii(v) for v in col.dictionary.to_pylist()]
    return pa.array(texts, pa.string()).take(col.indices)


def _number_lists_json(col: pa.Array) -> pa.Array:
    """JSON text of each list of numbers (``values``), as ``json.dumps`` writes it.

    Most lists hold only integral doubles (registers, bits, counters): their items are cast to
    int64 text and joined with ``.0,`` (so ``[3.0,4.0]``), which costs a fraction of formatting
    each double. Other lists (empty, or with one fraction, -0.0, NaN...) take ``_floats_json``.
    """
    import pyarrow.compute as pc

    offsets = col.offsets  # of this slice, into all of col.values
    first = offsets[0].as_py()
    values = col.values.slice(first, offsets[-1].as_py() - first)
    offsets = pc.subtract(offsets, first)  # a fresh array: from_arrays takes no sliced offsets
    cls = pa.ListArray if pa.types.is_list(col.type) else pa.LargeListArray
    mask = col.is_null()
    if pa.types.is_integer(values.type):
        lists = cls.from_arrays(offsets, values.cast(pa.string()), mask=mask)
        return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")
    values = values.cast(pa.float64())
    integral = pc.and_kleene(
        pc.and_kleene(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 1e15)),
        pc.invert(pc.and_kleene(pc.equal(values, 0.0), pc.less(pc.divide(1.0, values), 0.0))),
    ).fill_null(False)  # not -0.0, not NaN or infinite
    whole = cls.from_arrays(offsets, integral)
    # rows whose items are all integral, and not empty (an empty list is "[]", not "[.0]")
    plain = pc.greater(pc.list_value_length(whole), 0).fill_null(False)
    text = pc.cast(values, pa.int64(), safe=False).cast(pa.string())
    if not pc.all(integral).as_py():
        others = pc.invert(integral)
        text = pc.replace_with_mask(text, others, _floats_json(values.filter(others)))
        parents = pc.list_parent_indices(whole)
        mixed = np.zeros(len(col), np.bool_)
        mixed[pc.filter(parents, others).to_numpy()] = True
        plain = pc.and_(plain, pa.array(~mixed))
        fix = pc.and_(pc.invert(pc.take(plain, parents)), integral)
        text = pc.if_else(fix, pc.binary_join_element_wise(text, ".0", ""), text)
    lists = cls.from_arrays(offsets, text, mask=mask)
    return pc.if_else(
        plain,
        pc.binary_join_element_wise("[", pc.binary_join(lists, ".0,"), ".0]", ""),
        pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", ""),
    )


def _json_texts(name: str, col: pa.Array) -> pa.Array:
    """The JSON text of every value of a column, null where the value is null."""
    t = col.type
    if name == "ts" and pa.types.is_timestamp(t):
        import pyarrow.compute as pc

        return _floats_json(pc.divide(col.cast(pa.int64()).cast(pa.float64(), safe=False), 1e6))
    if name == "detail" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return col  # already JSON text (RecordBuilder writes it compact and ASCII)
    if pa.types.is_dictionary(t) and pa.types.is_string(t.value_type):
        return _strings_json(col)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _strings_json(col)
    if pa.types.is_integer(t):
        return col.cast(pa.string())
    if pa.types.is_floating(t):
        return _floats_json(col)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        return _number_lists_json(col)
    dumps = json.dumps
    return pa.array([None if v is None else dumps(v, separators=(",", ":"))
                     for v in col.to_pylist()], pa.string())


class JsonlWriter:
    """One JSON object per row, null fields left out, keys in schema order.

    Rows are formatted column by column with Arrow compute functions: every column becomes
    the text ``,"name":value`` (null for a null value), then one element-wise join skipping
    nulls makes the lines. ``detail`` is JSON text already (``RecordBuilder`` writes it compact
    and ASCII, as ``json.dumps`` would write the nested object) and goes in as it is.
    """

    ROWS = 8192  # rows formatted at a time: their text exists four times over meanwhile

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_columns:
            return
        for start in range(0, batch.num_rows, self.ROWS):
            self._write(batch.slice(start, self.ROWS))

    def _write(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        parts: list[Any] = [
            pc.binary_join_element_wise("," + encode_basestring_ascii(name) + ":",
                                        _json_texts(name, col), "")
            for name, col in zip(batch.schema.names, batch.columns, strict=True)
        ]
        body = pc.binary_join_element_wise(*parts, "", null_handling="skip")
        lines = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(body, 1), "}\n", "")
        text = pc.binary_join(pa.ListArray.from_arrays([0, len(lines)], lines), "")[0]
        self.out.write(text.as_py())

    def close(self) -> None:
        self.out.flush()


class ParquetWriter:
    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

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
            import pyarrow.csv as pacsv

            self.writer = pacsv.CSVWriter(self.out, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.out.flush()
