"""Readers for historian exports: CSV, gzipped CSV, whitespace ``.dat`` and Parquet.

Every reader returns a :class:`Frame`. Problems raise :class:`DataError` with one line naming
the file, the field and what to do, which the CLI prints with exit code 2. pyarrow (already a
dependency) reads CSV, ``.csv.gz`` and Parquet; numpy reads the Tennessee Eastman ``.dat`` files.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from interlock.detect.process.base import Frame

TIMESTAMP_NAMES = ("timestamp", "time", "datetime", "date", "t_stamp")
# The run of each row when one file holds many simulation runs (Rieth et al.'s TEP set:
# faultNumber, simulationRun, sample, then the 52 variables).
RUN_NAMES = frozenset({"simulationrun", "simulation_run", "run_id", "runid"})


class DataError(ValueError):
    """A historian file that cannot be used, with the reason on one line."""


def read_frame(
    path: Path, label: str | None = None, fault_start: int | None = None, require_label: bool = True
) -> Frame:
    """Read ``path``; ``label`` names the attack column (which must be there unless not
    ``require_label``); ``fault_start`` labels rows from N on (N rows into each run, in a file of
    several runs; with ``label`` too, only in the rows the label marks: a faulty run's rows
    before its fault is introduced are normal)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".dat"):
            frame = _read_dat(path)
        elif name.endswith((".parquet", ".pq")):
            frame = _from_table(path, pq.read_table(path), label)
        elif name.endswith((".csv", ".csv.gz", ".txt")):
            frame = _from_table(path, _csv(path), label)
        else:
            raise DataError(f"{path}: unknown format: use .csv, .csv.gz, .dat or .parquet")
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None
    if label is not None and frame.label is None and require_label:
        raise DataError(
            f"{path}: no label column {label!r}: check --label, or give the truth apart "
            "(--windows, --label-file)"
        )
    if fault_start is not None:
        if not 0 <= fault_start <= len(frame):
            raise DataError(f"{path}: --fault-start {fault_start} is outside the {len(frame)} rows")
        lab = np.zeros(len(frame), dtype=np.int8)
        for start, stop in frame.run_bounds():
            if fault_start > stop - start and frame.runs is not None:
                raise DataError(f"{path}: --fault-start {fault_start} is past the end of the run at "
                                f"data row {start + 1} ({stop - start} rows)")  # fmt: skip
            lab[start + fault_start : stop] = 1
        if frame.label is not None:
            lab &= frame.label
        frame = replace(frame, label=lab)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows")
    return frame


SUFFIXES = (".csv", ".csv.gz", ".txt", ".parquet", ".pq", ".dat")


def read_training(path: Path, label: str | None = None) -> Frame:
    """The training rows of ``path``: one file, or a folder or a quoted file-name pattern
    (``'hai/train*.csv'``) whose files (HAI ships its normal operation as train1.csv,
    train2.csv, ...) are read in name order (numbers as numbers) and joined, each file a run of
    its own (``Frame.runs``). A label column,
    if there is one, is read (so a text label is not a tag) and set aside: training is on the rows
    as they are."""
    if path.is_dir():
        data = (p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(SUFFIXES))
        files = sorted(data, key=_natural)
        if not files:
            raise DataError(f"{path}: no .csv, .csv.gz, .parquet or .dat files in the folder")
    elif not path.exists() and any(c in path.name for c in "*?["):
        # A quoted pattern (HAI keeps train1.csv .. train4.csv beside its test files)
        files = sorted((p for p in path.parent.glob(path.name) if p.is_file()), key=_natural)
        if not files:
            raise DataError(f"{path}: no file matches the pattern")
    else:
        return replace(read_frame(path, label=label, require_label=False), label=None, kinds=None)
    frames = [read_frame(f, label=label, require_label=False) for f in files]
    for i, (f, frame) in enumerate(zip(files[1:], frames[1:], strict=True), 1):
        same = aligned(frame, frames[0].tags)
        if same is None:
            odd = sorted(set(frame.tags) ^ set(frames[0].tags))
            raise DataError(f"{f}: tags differ from {files[0].name}: {', '.join(odd[:5])}")
        frames[i] = same
    stamps = [fr.timestamps for fr in frames]
    joined = None if any(s is None for s in stamps) else tuple(t for s in stamps if s for t in s)
    # Each file is a run of its own (HAI's train1..train4 are separate periods), and so is each
    # run inside a file: a detector that learns from consecutive rows must not bridge them.
    runs, first = [], 0
    for fr in frames:
        _, local = np.unique(fr.runs if fr.runs is not None else np.zeros(len(fr)), return_inverse=True)
        runs.append(first + local.astype(np.int64))
        first += int(local.max(initial=-1)) + 1
    return Frame(frames[0].tags, np.vstack([fr.values for fr in frames]), joined, runs=np.concatenate(runs))


def _csv(path: Path) -> pa.Table:
    """A CSV (plain or gzipped) as read for every reader here: text columns may be empty, and
    the lines before the header are skipped."""
    skip = pacsv.ReadOptions(skip_rows=_preamble(path))
    empty = pacsv.ConvertOptions(strings_can_be_null=True)
    return pacsv.read_csv(path, read_options=skip, convert_options=empty)


def _unreadable(path: Path, exc: Exception) -> DataError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{path}: cannot read ({first})")


def _natural(path: Path) -> list[str | int]:
    """Name order with numbers as numbers: train2.csv before train10.csv."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _preamble(path: Path, peek: int = 30) -> int:
    """Lines before the header: WADI's normal-operation export opens with four lines of metadata.
    The header is the first line with as many fields (at least two) as the line after it and at
    least twice as many as every line before it."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        widths = [len(row) for row in csv.reader(itertools.islice(fh, peek))]
    for i in range(len(widths) - 1):
        # Preamble lines have at most half the header's fields (a data row one wider than its
        # header, a trailing delimiter, is not a header with a preamble above it).
        if widths[i] >= 2 and widths[i] == widths[i + 1] and all(2 * w <= widths[i] for w in widths[:i]):
            return i
    return 0


def _short(tag: str) -> str:
    r"""A tag without the historian path in front (WADI's normal-operation file writes
    ``\\WIN-25J4RO10SBF\LOG_DATA\SUTD_WADI\LOG_DATA\1_AIT_001_PV`` where its attack file
    writes ``1_AIT_001_PV``)."""
    return tag.rsplit("\\", 1)[-1].strip() if "\\" in tag else tag  # not "/": units (m3/h) use it


def aligned(frame: Frame, tags: tuple[str, ...]) -> Frame | None:
    """``frame`` with its columns in the order of ``tags`` and under those names, matched by name,
    or else by name without a historian path; None when they do not match one to one."""
    if frame.tags == tags:
        return frame
    for key in (lambda t: t, _short):
        mine = {key(t): i for i, t in enumerate(frame.tags)}
        wanted = [key(t) for t in tags]
        if len(mine) == len(frame.tags) == len(set(wanted)) == len(tags) and set(mine) == set(wanted):
            cols = [mine[w] for w in wanted]
            return replace(frame, tags=tags, values=np.ascontiguousarray(frame.values[:, cols]))
    return None


def _read_dat(path: Path) -> Frame:
    try:
        x = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: not a whitespace-separated table of numbers ({exc})") from None
    # The Tennessee Eastman d00.dat is stored transposed (52 x 500): time runs along the longer
    # axis in every file of that set, so a table wider than tall is turned upright.
    if x.shape[1] > x.shape[0]:
        x = x.T
    _check_finite(path, x, [f"x{i + 1}" for i in range(x.shape[1])])
    tags = tuple(f"x{i + 1}" for i in range(x.shape[1]))
    return Frame(tags, np.ascontiguousarray(x))


def _from_table(path: Path, table: pa.Table, label: str | None) -> Frame:
    names = [n.strip() for n in table.column_names]
    table = table.rename_columns(names)
    # WADI writes its time as two columns (Date, Time): every timestamp-like column is left out
    # of the tags, and their texts are joined into one timestamp per row.
    stamps = [n for n in names if n.lower() in TIMESTAMP_NAMES and n != label]
    timestamps = None
    if stamps:
        texts = []
        for stamp in stamps:
            col = table.column(stamp)
            if col.null_count:
                raise DataError(f"{path}: column {stamp!r} has {col.null_count} empty timestamps")
            texts.append([str(v).strip() for v in col.to_pylist()])
        timestamps = tuple(" ".join(parts) for parts in zip(*texts, strict=True))
    lab = kinds = None
    if label is not None and label in names:
        lab = _label(path, label, table.column(label))
        kinds = _kinds(label, table.column(label))
    run = next((n for n in names if n.lower() in RUN_NAMES and n != label), None)
    sample = next((n for n in names if n.lower() == "sample"), None)
    counted = None if sample is None else _whole(table.column(sample))
    runs: np.ndarray | None = None
    run_names: list[str] = []
    if run is not None:
        # A sample counter that starts again starts a new run, even under the same run number
        # (Rieth's faulty files: run 1 of fault 2 right after run 1 of fault 1).
        again = np.zeros(0, dtype=np.intp) if counted is None else np.flatnonzero(np.diff(counted) != 1) + 1
        by = table.column(label) if lab is not None and label is not None else None
        runs, run_names = _runs(path, run, table.column(run), by, again)
    counters = [n for n in names if _is_row_counter(n, table, runs)]
    if runs is not None and timestamps is None:
        # run/sample: unique across the file (a run cannot come back), as --windows and
        # --predictions need
        if counted is not None and sample in counters:
            within = counted.astype(np.int64).tolist()
        else:
            first = np.flatnonzero(np.diff(runs, prepend=-1))  # each run's first row
            within = (np.arange(len(runs)) - first[runs] + 1).tolist()
        timestamps = tuple(f"{run_names[r]}/{i}" for r, i in zip(runs.tolist(), within, strict=True))
    tags = [n for n in names if n not in stamps and n != label and n not in counters and n != run]
    if not tags:
        raise DataError(f"{path}: no tag columns besides timestamp and label")
    cols = []
    for tag in tags:
        col = table.column(tag)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = _decimal_commas(col)
        if not (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type)
            or pa.types.is_null(col.type)
        ):
            raise DataError(f"{path}: column {tag!r} is not numeric ({col.type}): drop it or fix the export")
        cols.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64))
    x = np.column_stack(cols) if cols else np.empty((table.num_rows, 0))
    _check_finite(path, x, tags)
    return Frame(tuple(tags), x, timestamps, lab, runs, kinds)


def _runs(
    path: Path, name: str, col: pa.ChunkedArray, label: pa.ChunkedArray | None = None,
    again: npt.NDArray[np.intp] | None = None,
) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Each row's run as the index of its run in the file, and the runs' names as written
    (numbers or text: 3, "batch-3"). A run is one block of rows. Rieth's faulty files number
    their runs 1..500 again for each fault: where the label is constant within every run, a run
    is named by label and run ("3/17": fault 3, run 17), so the names stay unique. ``again``:
    rows that start a run whatever their run number."""
    if col.null_count:
        raise DataError(f"{path}: run column {name!r} has {col.null_count} empty values")
    codes, texts = _codes(col)
    changes = np.flatnonzero(np.diff(codes) != 0) + 1
    starts = np.union1d(np.concatenate([[0], changes]), [] if again is None else again).astype(np.intp)
    names = [texts(i) for i in starts.tolist()]
    if len(set(names)) < len(names) and label is not None:
        kind_codes, kind_texts = _codes(label)
        # the label constant within every run: it changes only where a run starts
        if np.isin(np.flatnonzero(np.diff(kind_codes) != 0) + 1, starts).all():
            names = [f"{kind_texts(i)}/{n}" for i, n in zip(starts.tolist(), names, strict=True)]
    seen: set[str] = set()
    for start, run in zip(starts.tolist(), names, strict=True):
        if run in seen:
            raise DataError(f"{path}: run {run!r} of column {name!r} comes back at data row "
                            f"{start + 1}: sort the file by run")  # fmt: skip
        seen.add(run)
    runs = np.zeros(len(codes), dtype=np.int64)
    runs[starts[1:]] = 1
    return np.cumsum(runs), names


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, Callable[[int], str]]:
    """A column as numbers that are equal where its values are, and the text of row i (whole
    numbers without a decimal point: 1.0 as "1"); numbers stay in numpy (Rieth's files have
    millions of rows)."""
    whole = _whole(col)
    if whole is not None:
        return whole, lambda i: str(int(whole[i]))
    texts = np.array([str(v).strip() for v in col.to_pylist()], dtype=object)
    return np.unique(texts, return_inverse=True)[1], lambda i: str(texts[i])


def _whole(col: pa.ChunkedArray) -> np.ndarray | None:
    """A numeric column of whole numbers as float64 (1 and 1.0 alike), else None."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)) or col.null_count:
        return None
    raw = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if not np.all(np.isfinite(raw)) or np.any(raw != np.rint(raw)):
        return None
    return raw


def _decimal_commas(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Numbers written with a decimal comma ("2,427057", as one SWaT export from a European
    spreadsheet has them) as float64; the column unchanged when any value is not such a number."""
    # "1,234" could be a thousands separator: some value must show a comma that is not one
    # (other than three digits after it) before any is read as a decimal comma.
    if not pc.any(pc.match_substring_regex(col, r",(\d{1,2}|\d{4,})([eE][-+]?\d+)?$")).as_py():
        return col
    try:
        return pc.cast(pc.replace_substring(col, ",", "."), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return col


NORMAL_WORDS = frozenset({"normal", "0", "false", "no", "benign", "noattack"})
ATTACK_WORDS = frozenset({"attack", "1", "true", "yes", "anomaly", "abnormal", "fault", "malicious"})


def _label(path: Path, name: str, col: pa.ChunkedArray) -> np.ndarray:
    """0/1 per row from a label column: numbers, or words as SWaT writes them ("Normal",
    "Attack", and its typo "A ttack"). Numbers > 0 are attacks (BATADAL marks unlabeled rows
    -999: normal), except in the -1/1 convention of WADI's "(1:No Attack, -1:Attack)" column and
    of scikit-learn's outlier detectors, where -1 is the attack."""
    if col.null_count:
        raise DataError(f"{path}: label column {name!r} has {col.null_count} empty values")
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        words = np.array(["".join(str(v).split()).lower() for v in col.to_pylist()], dtype=object)
        unknown = sorted(set(words) - NORMAL_WORDS - ATTACK_WORDS)
        if unknown:
            raise DataError(
                f"{path}: label column {name!r} has the value {unknown[0]!r}: use 0/1 or Normal/Attack"
            )
        return np.asarray(np.isin(words, list(ATTACK_WORDS)), dtype=np.int8)
    raw = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if np.isnan(raw).any():
        raise DataError(f"{path}: label column {name!r} has empty or non-numeric values")
    minus_one = "-1:attack" in "".join(name.split()).lower()
    if minus_one or (set(np.unique(raw)) == {-1.0, 1.0}):
        return np.asarray(raw == -1, dtype=np.int8)
    return np.asarray(raw > 0, dtype=np.int8)


def _kinds(name: str, col: pa.ChunkedArray) -> np.ndarray | None:
    """The label's numbers per row when it has several positive whole values (TEP's faultNumber:
    0 normal, 1..20 the fault), else None; not in the -1/1 convention."""
    raw = _whole(col)
    if raw is None or "-1:attack" in "".join(name.split()).lower():
        return None
    return raw.astype(np.int64) if len(np.unique(raw[raw > 0])) > 1 else None


ROW_COUNTER_NAMES = frozenset({"", "row", "index", "id", "unnamed: 0", "no", "no.", "sample"})


def _is_row_counter(name: str, table: pa.Table, runs: np.ndarray | None = None) -> bool:
    """A row number written beside the data (pandas' unnamed index, WADI's "Row", the sample
    number within each run of a TEP file): named like one and counting up by one a row (within
    each run). As a tag it would put every later file out of range."""
    if name.lower() not in ROW_COUNTER_NAMES or table.num_rows < 2:
        return False
    raw = _whole(table.column(name))  # 1, 2, 3 or 1.0, 2.0, 3.0 (a table converted through pandas)
    if raw is None:
        return False
    steps = np.diff(raw)
    if runs is not None:
        steps = steps[np.diff(runs) == 0]  # a new run starts its count again
    return bool(np.all(steps == 1))


def _check_finite(path: Path, x: np.ndarray, tags: list[str]) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"{path}: column {tags[col]!r} has {int(bad[:, col].sum())} missing or non-finite values "
            f"(first at data row {row + 1}): fill or drop them before evaluating"
        )


def read_windows(path: Path, frame: Frame) -> np.ndarray:
    """0/1 per row of ``frame`` from a CSV of attack windows ``start,end`` (inclusive).

    Timestamps are matched as text against the frame's timestamp column, so the file is written
    in the historian's own format and no date format has to be guessed. Blank lines and lines
    starting with ``#`` (the source of the windows) are skipped, as is a ``start,end`` header.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if frame.timestamps is None:
        raise DataError(f"{path}: the test file has no timestamp column to match the windows against")
    where = {t.strip(): i for i, t in enumerate(frame.timestamps)}
    label = np.zeros(len(frame), dtype=np.int8)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#") or text.replace(" ", "").lower() == "start,end":
            continue
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: give one window per line as start,end")
        missing = [p for p in parts if p not in where]
        if missing:
            raise DataError(f"{path}:{number}: timestamp {missing[0]!r} is not in the test file")
        lo, hi = where[parts[0]], where[parts[1]]
        if hi < lo:
            raise DataError(f"{path}:{number}: the window ends before it starts")
        label[lo : hi + 1] = 1
    if not label.any():
        raise DataError(f"{path}: no attack window in the file")
    return label


def read_label_file(path: Path, frame: Frame) -> np.ndarray:
    """0/1 per row of ``frame`` from a CSV of per-row ground truth: a timestamp column and one
    label column (HAI 23.05 ships ``label-test1.csv`` beside ``test1.csv``), matched to the
    frame's rows by timestamp text; labels read as ``--label`` reads them."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if frame.timestamps is None:
        raise DataError(f"{path}: the test file has no timestamp column to match the labels against")
    try:
        table = _csv(path)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None
    names = [n.strip() for n in table.column_names]
    table = table.rename_columns(names)
    stamp = next((n for n in names if n.lower() in TIMESTAMP_NAMES), None)
    others = [n for n in names if n != stamp]
    if stamp is None or len(others) != 1:
        raise DataError(f"{path}: give two columns, a timestamp and the label, not {', '.join(names)}")
    labels = _label(path, others[0], table.column(others[0]))
    where = {str(t).strip(): int(v) for t, v in zip(table.column(stamp).to_pylist(), labels, strict=True)}
    out = np.zeros(len(frame), dtype=np.int8)
    for i, t in enumerate(frame.timestamps):
        got = where.get(t.strip())
        if got is None:
            raise DataError(f"{path}: no label for the test file's timestamp {t!r} (row {i + 1})")
        out[i] = got
    return out


MAX_DECIMALS = 6  # finer than this counts as full precision


def decimals(values: np.ndarray) -> np.ndarray:
    """Per column, the fewest decimals that write every value exactly (MAX_DECIMALS + 1: finer,
    or fewer than two distinct fractional values to tell by)."""
    out = np.full(values.shape[1], MAX_DECIMALS + 1)
    for j in range(values.shape[1]):
        col = values[:, j]
        fractional = np.unique(col[col != np.rint(col)])
        if len(fractional) < 2:
            continue  # whole numbers only (a pump idle all year, a status): no evidence of resolution
        for k in range(MAX_DECIMALS + 1):
            scaled = col * 10.0**k
            if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-6 + 1e-9 * np.abs(scaled)):
                out[j] = k
                break
    return out


def common_resolution(train: Frame, test: Frame) -> tuple[Frame, Frame, dict[str, int]]:
    """Both frames rounded, tag by tag, to the coarser of their two resolutions.

    Historians export at different resolutions (BATADAL's 2014 year is stored at full float
    precision, its 2016 year at two decimals). A model fitted at full precision learns
    relations finer than the other file can show (P_J280 varies by 0.006 in all; rounding to
    0.01 moves it by up to 0.005) and alarms on the rounding itself. Returns the tags rounded
    and their decimals.
    """
    if train.tags != test.tags:
        return train, test, {}
    d_train, d_test = decimals(train.values), decimals(test.values)
    common = np.minimum(d_train, d_test)
    changed = {t: int(common[j]) for j, t in enumerate(train.tags) if d_train[j] != d_test[j]}
    if not changed:
        return train, test, {}

    def rounded(frame: Frame) -> Frame:
        x = frame.values.copy()
        for j, tag in enumerate(frame.tags):
            if tag in changed:
                x[:, j] = np.round(x[:, j], changed[tag])
        return replace(frame, values=x)

    return rounded(train), rounded(test), changed
