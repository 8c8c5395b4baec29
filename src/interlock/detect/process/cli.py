"""``interlock eval process``: train a process detector on normal data, score a test file, measure.

Bad input ends with one line naming the file and the problem, and exit code 2.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from interlock.detect.process import (
    DEFAULT,
    NAMES,
    DataError,
    Frame,
    detector_class,
    read_frame,
    read_training,
)
from interlock.detect.process.base import ProcessDetector, typed_param
from interlock.detect.process.data import aligned, common_resolution, read_label_file, read_windows
from interlock.detect.process.etapr import ETaPR, etapr
from interlock.detect.process.metrics import Report, episodes, evaluate, merge_gaps
from interlock.detect.process.vus import MAX_BUFFER, vus_pr

# Yin et al., J. Process Control 22 (2012) 1567, Table 4: PCA T²/SPE detection rate %, IDV1-15.
TEP_PCA_BASELINE = {
    1: 99.88, 2: 98.75, 3: 12.88, 4: 100.0, 5: 33.63, 6: 100.0, 7: 100.0, 8: 98.0,
    9: 8.38, 10: 60.5, 11: 78.88, 12: 99.13, 13: 95.38, 14: 100.0, 15: 14.13,
}  # fmt: skip
TEP_PCA_FALSE_ALARM = 6.13
# Alarms this many quiet rows apart or closer are one episode (chosen on BATADAL_dataset04 and
# TEP's test files, eleventh session: docs/process-detection.md).
MERGE_GAP = 6
TEP_FAULT_START = 160  # the fault is introduced at sample 161 (1-based)
# Column names public data sets give their ground truth (BATADAL, SWaT, HAI, WADI, generic).
LABEL_NAMES = frozenset(
    {"att_flag", "attack", "label", "normal/attack", "anomaly", "fault", "class", "faultnumber"}
)


def _fail(message: str) -> None:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


@click.group("eval")
def eval_group() -> None:
    """Measure detectors on labeled data."""


def _detector(name: str, quantile: float, smooth: int, params: tuple[str, ...] = ()) -> ProcessDetector:
    cls = detector_class(name)
    known = cls(quantile=quantile, smooth=smooth).get_params()
    kwargs: dict[str, Any] = {"quantile": quantile, "smooth": smooth}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or key not in known or key in ("quantile", "smooth"):
            _fail(f"--param {item}: give NAME=VALUE with NAME one of {', '.join(sorted(known))}"
                  " (quantile and smooth have their own options)")  # fmt: skip
        try:
            kwargs[key] = typed_param(known[key], value)
        except ValueError as exc:
            _fail(f"--param {item}: {exc}")
    return cls(**kwargs)


@eval_group.command("process")
@click.argument("train", type=click.Path(path_type=Path))
@click.argument("test", type=click.Path(path_type=Path))
@click.option(
    "--label",
    help="Attack label column (1 = attack) in TEST; set aside in TRAIN. With --windows or "
    "--label-file TEST may lack it.",
)
@click.option(
    "--fault-start", type=int,
    help="TEST rows from N on (counting from 0; in each run of a file of several) are faulty; with "
    "--label, only in the rows the label marks.",
)  # fmt: skip
@click.option(
    "--windows", type=click.Path(path_type=Path),
    help="Ground truth as attack windows: a CSV of start,end timestamps (inclusive), written as "
    "in TEST's timestamp column; replaces the --label column as the truth.",
)  # fmt: skip
@click.option(
    "--label-file", type=click.Path(path_type=Path),
    help="Ground truth per row in a separate CSV: a timestamp and a label column (HAI 23.05's "
    "label-test1.csv), matched to TEST's rows by timestamp text.",
)  # fmt: skip
@click.option("--detector", type=click.Choice(NAMES), default=DEFAULT, show_default=True)
@click.option(
    "--quantile",
    type=float,
    default=0.99,
    show_default=True,
    help="Threshold: this quantile of the scores on TRAIN.",
)
@click.option("--smooth", type=int, default=1, show_default=True, help="Average scores over N rows.")
@click.option(
    "--merge-gap", type=int, default=MERGE_GAP, show_default=True,
    help="Alarms at most N quiet rows apart are one episode: the rows between are alarmed too "
    "(offline; never moves a first alarm). 0: each row's own alarm.",
)  # fmt: skip
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE",
    help="A detector parameter (repeatable), e.g. --param persist=3 for dpca/cva.",
)  # fmt: skip
@click.option(
    "--benchmark",
    type=click.Choice(["tep"]),
    help="tep: TEST is the folder of dNN_te.dat; run faults 1-15 and d00_te.",
)
@click.option(
    "--resolution", type=click.Choice(["common", "keep"]), default="common", show_default=True,
    help="common: round each tag of TRAIN and TEST to the coarser of the two files' decimals "
    "(historians export at different resolutions); keep: use the values as read.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--predictions", type=click.Path(path_type=Path),
    help="Write a timestamp,score,alarm,live CSV (alarm merged by --merge-gap, live the row's own).",
)  # fmt: skip
@click.option("--plot", type=click.Path(path_type=Path), help="Draw scores, threshold, attacks (PNG).")
def process(
    train: Path, test: Path, label: str | None, fault_start: int | None, windows: Path | None,
    label_file: Path | None,
    detector: str,
    quantile: float, smooth: int, merge_gap: int, params: tuple[str, ...], benchmark: str | None,
    resolution: str,
    as_json: bool,
    predictions: Path | None, plot: Path | None,
) -> None:  # fmt: skip
    """Train a process detector on TRAIN (normal operation: a file, or a folder of files joined
    in name order), score TEST, print the metrics."""
    if not 0 < quantile <= 1:
        _fail(f"--quantile {quantile}: give a number in (0, 1]")
    if smooth < 1:
        _fail(f"--smooth {smooth}: give a whole number of rows, 1 or more")
    if merge_gap < 0:
        _fail(f"--merge-gap {merge_gap}: give a whole number of rows, 0 or more")
    try:
        train_frame = read_training(train, label)
        det = _detector(detector, quantile, smooth, params)
        if benchmark == "tep":
            _tep(det, train_frame, test, merge_gap, as_json)
            return
        # Ground truth given apart (windows, a label file): the test file may lack the label
        # column, as the BATADAL competition's test file does; --label still names it in TRAIN.
        apart = windows is not None or label_file is not None
        if apart and fault_start is not None:
            _fail("give the ground truth once: --windows, --label-file or --fault-start")
        test_frame = read_frame(test, label=label, fault_start=fault_start, require_label=not apart)
        no_label_column = label is None or (apart and test_frame.label is None)
        if windows is not None and label_file is not None:
            _fail("give the ground truth once: --windows or --label-file")
        # The kinds are the label column's: not those of windows or a label file that replace it.
        if windows is not None:
            test_frame = replace(test_frame, label=read_windows(windows, test_frame), kinds=None)
        if label_file is not None:
            test_frame = replace(test_frame, label=read_label_file(label_file, test_frame), kinds=None)
    except DataError as exc:
        _fail(str(exc))
        return
    if (windows is not None or label_file is not None or fault_start is not None) and no_label_column:
        # No label column in TEST: a column that looks like one would be left in as a tag and
        # hand the answer to the detectors (a misspelt --label too, now that TEST may lack it).
        truthy = [(test, t) for t in test_frame.tags if t.lower() in LABEL_NAMES]
        truthy += [(train, t) for t in train_frame.tags if t.lower() in LABEL_NAMES]
        if truthy and label is None:
            given = "--windows" if windows else "--label-file" if label_file else "--fault-start"
            _fail(f"{truthy[0][0]}: column {truthy[0][1]!r} looks like ground truth: name it with --label "
                  f"so it is left out of the tags ({given} still applies)")  # fmt: skip
        if truthy:
            _fail(f"{truthy[0][0]}: column {truthy[0][1]!r} looks like ground truth and --label {label!r} "
                  f"names no column of {test.name}: check --label")  # fmt: skip
    # Per-stage attack columns beside the label (HAI's attack_P1..P3 next to attack) are ground
    # truth too: left in as tags they would hand the answer to any detector.
    left_out = sorted(_label_like(label, set(train_frame.tags) | set(test_frame.tags)))
    for tag in left_out:
        train_frame, test_frame = _drop(train_frame, tag), _drop(test_frame, tag)
    same = aligned(test_frame, train_frame.tags)
    if same is None:
        missing = sorted(set(train_frame.tags) ^ set(test_frame.tags))
        _fail(f"{test}: tags differ from {train.name}: {', '.join(missing[:5])}")
        return
    test_frame = same
    rounded: dict[str, int] = {}
    if resolution == "common":
        train_frame, test_frame, rounded = common_resolution(train_frame, test_frame)
    if test_frame.label is None:
        _fail(f"{test}: no ground truth: name the label column with --label, or give --fault-start")
        return
    _fit(det, train_frame, detector)
    scores = _score_runs(det, test_frame)
    cuts = [start for start, _ in test_frame.run_bounds()[1:]]  # no attack goes on into the next run
    live = (scores > det.threshold_).astype(np.int8)
    alarm = merge_gaps(live, merge_gap, cuts)
    report = evaluate(test_frame.label, alarm, cuts=cuts, live=live)
    eta = etapr(test_frame.label, alarm, cuts=cuts) if report.episodes else None
    vus = vus_pr(test_frame.label, scores) if report.episodes else None
    blamed = _blame(det, test_frame, report)
    if predictions is not None:
        _write_predictions(predictions, test_frame, scores, alarm, live)
    if plot is not None:
        from interlock.detect.process.plot import plot_scores

        plot_scores(plot, scores, det.threshold_, test_frame.label, f"{det.name} on {test.name}")
    if as_json:
        truth = (
            f"windows {windows.name}" if windows else f"labels {label_file.name}" if label_file
            else f"column {label}, rows {fault_start}- of each run" if label and fault_start is not None
            else f"column {label}" if label else f"rows {fault_start}-"
        )  # fmt: skip
        extra: dict[str, Any] = {
            "ground_truth": truth,
            "merge_gap": merge_gap,
            "rounded": rounded,
            "label_columns_left_out": left_out,
        }
        if test_frame.kinds is not None:
            extra["per_kind"] = _per_kind(test_frame, alarm, cuts, live)
        click.echo(json.dumps({**_as_dict(det, report, blamed, eta, vus), **extra}))
    else:
        if left_out:
            click.echo(f"left out as ground truth, not tags: {', '.join(left_out)}")
        if rounded:
            places = sorted(set(rounded.values()))
            click.echo(f"compared at the coarser resolution: {len(rounded)} tags rounded to "
                       f"{'/'.join(map(str, places))} decimals (--resolution keep: as read)")  # fmt: skip
        _print(det, test, report, blamed, eta, vus)
        _print_merge(merge_gap)
        if test_frame.kinds is not None:
            _print_kinds(label or "label", _per_kind(test_frame, alarm, cuts, live))
        if windows is not None:
            click.echo(f"ground truth: the attack windows of {windows}")


def _score_runs(det: ProcessDetector, frame: Frame) -> np.ndarray:
    """Scores of ``frame``, each of its simulation runs scored from a fresh start (lag rows,
    filters): the first rows of a run are not the continuation of the run before."""
    bounds = frame.run_bounds()
    if len(bounds) == 1:
        return det.score(frame)
    return np.concatenate([det.score(frame.rows(a, b)) for a, b in bounds])


def _drop(frame: Frame, tag: str) -> Frame:
    keep = [i for i, t in enumerate(frame.tags) if t != tag]
    return replace(frame, tags=tuple(frame.tags[i] for i in keep), values=frame.values[:, keep])


def _label_like(label: str | None, tags: set[str]) -> set[str]:
    """Tags named as the label plus a suffix (``attack_P1`` beside ``attack``)."""
    if not label:
        return set()
    pattern = re.compile(rf"{re.escape(label)}[_\W]", re.IGNORECASE)
    return {t for t in tags if pattern.match(t)}


def _blame(det: ProcessDetector, frame: Frame, report: Report) -> list[list[str]]:
    """For each detected attack, the three tags blamed at its first alarm (as ``explain`` ranks
    them), from one blame call over all those rows: a call per attack scored the frame again
    each time (50 attacks in a 400,000-row file: 50 passes)."""
    rows = np.asarray([e.detected_at for e in report.episodes if e.detected_at is not None], dtype=np.intp)
    if not rows.size:
        return [[] for _ in report.episodes]
    parts = []
    for start, stop in frame.run_bounds():  # each run from a fresh start, as it was scored
        mine = rows[(rows >= start) & (rows < stop)]
        if mine.size:  # detectors are causal: the rows after the last one blamed change nothing
            parts.append(det._blame(frame.values[start : int(mine.max()) + 1], mine - start))
    weights = iter(np.vstack(parts))
    out: list[list[str]] = []
    for e in report.episodes:
        if e.detected_at is None:
            out.append([])
            continue
        w = next(weights)
        ranked = sorted(zip(frame.tags, map(float, w), strict=True), key=lambda kv: -kv[1])
        out.append([t for t, v in ranked[:3] if v > 0])
    return out


def _as_dict(
    det: ProcessDetector, r: Report, blamed: list[list[str]], eta: ETaPR | None, vus: float | None
) -> dict[str, Any]:
    return {
        "detector": det.name,
        "params": det.get_params(),
        "threshold": det.threshold_,
        "precision": r.precision,
        "recall": r.recall,
        "f1": r.f1,
        "false_alarm_rate": r.false_alarm_rate,
        "batadal_s": r.batadal_s,
        "s_ttd": r.s_ttd,
        "s_cm": r.s_cm,
        "point_adjusted_f1": r.point_adjusted_f1,
        # null only when the test file holds no attack (both metrics are undefined then).
        "etapr_f1": eta.f1 if eta else None,
        "etapr_precision": eta.precision if eta else None,
        "etapr_recall": eta.recall if eta else None,
        "vus_pr": vus,
        "vus_max_buffer": MAX_BUFFER,
        # The readable rules a detector learned, under its name: the invariants mined, the
        # switching levels of each pump (other detectors: absent).
        **({det.name: det.describe()} if hasattr(det, "describe") else {}),
        "attacks": [
            {
                "start": e.start,
                "stop": e.stop,
                "detected_at": e.detected_at,
                "time_to_detect": e.time_to_detect if e.detected_at is not None else None,
                "tags": tags,
            }
            for e, tags in zip(r.episodes, blamed, strict=True)
        ],
    }


LISTED = 50  # attacks listed one per line in the text output


def _print(
    det: ProcessDetector, test: Path, r: Report, blamed: list[list[str]], eta: ETaPR | None,
    vus: float | None,
) -> None:  # fmt: skip
    click.echo(f"detector {det!r}  threshold {det.threshold_:.4g} (training quantile)")
    click.echo(
        f"precision {r.precision:.3f}  recall {r.recall:.3f}  F1 {r.f1:.3f}  "
        f"false alarm rate {r.false_alarm_rate:.3f}"
    )
    click.echo(f"BATADAL S {r.batadal_s:.3f}  (S_TTD {r.s_ttd:.3f}, S_CM {r.s_cm:.3f})")
    if eta is not None and vus is not None:
        click.echo(
            f"eTaPR TaP {eta.precision:.3f}  TaR {eta.recall:.3f}  F1 {eta.f1:.3f}  "
            f"({eta.detected}/{eta.attacks} attacks)  VUS-PR {vus:.3f} (buffers 0-{MAX_BUFFER})"
        )
    click.echo(f"point-adjusted F1 {r.point_adjusted_f1:.3f}  (for comparison only, not a headline)")
    click.echo(f"attacks in {test.name}: {len(r.episodes)}")
    for i, (e, tags) in enumerate(zip(r.episodes, blamed, strict=True), 1):
        if i > LISTED and len(r.episodes) > LISTED + 1:
            click.echo(f"  ... {len(r.episodes) - LISTED} more (--json lists them all)")
            break
        when = "missed" if e.detected_at is None else f"detected after {e.time_to_detect} rows"
        who = f"  tags: {', '.join(tags)}" if tags else ""
        click.echo(f"  {i}. rows {e.start}-{e.stop - 1} ({e.duration} rows): {when}{who}")


def _per_kind(frame: Frame, alarm: np.ndarray, cuts: list[int], live: np.ndarray) -> list[dict[str, Any]]:
    """Per value of the label (each TEP fault): attacks (its own rows, cut where runs start),
    detected, the share of its attack rows alarmed and the mean time to detect of the detected
    (from the ``live`` alarms, as ``evaluate``)."""
    assert frame.kinds is not None and frame.label is not None
    out = []
    for kind in sorted(int(k) for k in np.unique(frame.kinds[frame.label == 1])):
        rows = (frame.kinds == kind) & (frame.label == 1)
        mine = episodes(rows.astype(np.int8), live, cuts)
        found = [e.time_to_detect for e in mine if e.detected_at is not None]
        out.append({
            "kind": kind, "attacks": len(mine), "detected": len(found),
            "detection_rate": float(alarm[rows].mean()),
            "mean_time_to_detect": float(np.mean(found)) if found else None,
        })  # fmt: skip
    return out


def _print_kinds(label: str, kinds: list[dict[str, Any]]) -> None:
    click.echo(f"per {label} value: attacks, detected, attack rows alarmed, mean time to detect (rows)")
    for k in kinds:
        ttd = "-" if k["mean_time_to_detect"] is None else f"{k['mean_time_to_detect']:.1f}"
        click.echo(f"  {k['kind']:>4}  {k['attacks']:>5}  {k['detected']:>5}  "
                   f"{100 * k['detection_rate']:6.2f}%  {ttd:>7}")  # fmt: skip


def _write_predictions(
    path: Path, frame: Frame, scores: np.ndarray, alarm: np.ndarray, live: np.ndarray
) -> None:
    """timestamp, score, alarm (merged, ``--merge-gap``) and live (the row's own alarm)."""
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["timestamp", "score", "alarm", "live"])
            stamps = frame.timestamps or tuple(str(i) for i in range(len(frame)))
            for ts, s, a, b in zip(stamps, scores, alarm, live, strict=True):
                out.writerow([ts, f"{s:.6g}", int(a), int(b)])
    except OSError as exc:
        _fail(f"{path}: cannot write ({exc.strerror})")


def _fit(det: ProcessDetector, train: Frame, name: str) -> None:
    """Fit; what the detector refuses (a parameter such as ``--param odds=2``, too few training
    rows for its model) is one line naming the detector, not a traceback."""
    try:
        det.fit(train)
    except ValueError as exc:
        _fail(f"--detector {name} cannot be fitted on the training data as set: {exc}")


def _tep(det: ProcessDetector, train: Frame, folder: Path, merge_gap: int, as_json: bool) -> None:
    """Faults 1-21 and the normal test run, one fitted model, the same threshold for all.

    Faults 16-21 are run when their files are present; the published baseline covers 1-15, so
    the means are given over 1-15 (comparable) and over every fault run.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: --benchmark tep needs the folder holding d00_te.dat ... d21_te.dat")
    _fit(det, train, det.name)
    normal = read_frame(folder / "d00_te.dat")
    far = 100.0 * float(merge_gaps(det.predict(normal), merge_gap).mean())
    rows: list[dict[str, Any]] = []
    for fault in range(1, 22):
        path = folder / f"d{fault:02d}_te.dat"
        if fault > 15 and not path.exists():
            continue
        frame = read_frame(path, fault_start=TEP_FAULT_START)
        scores = det.score(frame)
        live = scores > det.threshold_
        alarm = merge_gaps(live, merge_gap)
        assert frame.label is not None  # set by fault_start
        eta = etapr(frame.label, alarm)
        rows.append({
            "fault": fault,
            "detection_rate": 100.0 * float(alarm[TEP_FAULT_START:].mean()),
            "detection_rate_live": 100.0 * float(live[TEP_FAULT_START:].mean()),  # before merging
            "baseline": TEP_PCA_BASELINE.get(fault),
            "alarms_before_fault": 100.0 * float(alarm[:TEP_FAULT_START].mean()),
            "etapr_precision": eta.precision,
            "etapr_recall": eta.recall,
            "etapr_f1": eta.f1,
            "vus_pr": vus_pr(frame.label, scores),
        })  # fmt: skip
    first = [r for r in rows if r["fault"] <= 15]
    mean = float(np.mean([r["detection_rate"] for r in first]))
    mean_all = float(np.mean([r["detection_rate"] for r in rows]))
    # Each row's own alarm, as the published per-row baseline is counted.
    mean_live = float(np.mean([r["detection_rate_live"] for r in first]))
    mean_eta = float(np.mean([r["etapr_f1"] for r in rows]))
    mean_vus = float(np.mean([r["vus_pr"] for r in rows]))
    base = float(np.mean(list(TEP_PCA_BASELINE.values())))
    if as_json:
        click.echo(json.dumps({
            "detector": det.name, "params": det.get_params(), "faults": rows,
            "mean_detection_rate": mean, "mean_detection_rate_all": mean_all,
            "mean_detection_rate_live": mean_live,
            "merge_gap": merge_gap,
            "mean_etapr_f1": mean_eta, "mean_vus_pr": mean_vus, "false_alarm_rate": far,
            "vus_max_buffer": MAX_BUFFER,
        # The readable rules a detector learned, under its name: the invariants mined, the
        # switching levels of each pump (other detectors: absent).
        **({det.name: det.describe()} if hasattr(det, "describe") else {}),
        }))  # fmt: skip
        return
    click.echo(f"detector {det!r}  trained on {len(train)} normal rows")
    click.echo("fault  detection %  published PCA %  alarms before fault %  eTaPR F1  VUS-PR")
    for r in rows:
        published = f"{r['baseline']:>14.2f}" if r["baseline"] is not None else f"{'-':>14}"
        click.echo(
            f"{r['fault']:>5}  {r['detection_rate']:>11.2f}  {published}"
            f"  {r['alarms_before_fault']:>20.2f}  {r['etapr_f1']:>8.3f}  {r['vus_pr']:>6.3f}"
        )
    click.echo(f" mean  {mean:>11.2f}  {base:>14.2f}  (faults 1-15; {mean_live:.2f} each row's own alarm)")
    click.echo(f" mean  {mean_all:>11.2f}  {'-':>14}  {'':>20}  {mean_eta:>8.3f}  {mean_vus:>6.3f}"
               f"  (all {len(rows)} faults)")  # fmt: skip
    click.echo(f"false alarm rate on d00_te: {far:.2f}%  (published PCA: {TEP_PCA_FALSE_ALARM}%)")
    _print_merge(merge_gap)


def _print_merge(gap: int) -> None:
    if gap:
        click.echo(f"alarms at most {gap} quiet rows apart merged into one episode "
                   "(--merge-gap 0: each row's own alarm)")  # fmt: skip


@eval_group.command("tampering")
@click.argument("historian", type=click.Path(path_type=Path))
@click.option("--plant", type=click.Choice(["gas-pipeline", "reactor", "refinery"]), required=True)
@click.option(
    "--normal-until",
    type=float,
    required=True,
    help="Plant seconds: rows before this are normal operation, used to learn each loop's law.",
)
@click.option(
    "--operator-log", type=click.Path(path_type=Path), help="CSV time,tag,value of operator commands."
)
@click.option("--device", default="plc-1", show_default=True, help="The PLC whose registers to check.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tampering(
    historian: Path, plant: str, normal_until: float, operator_log: Path | None, device: str, as_json: bool
) -> None:
    """Setpoint/gain/mode changes no operator made, and PID loops off their law, in a range historian."""
    import pyarrow.parquet as pq

    from interlock.detect.process.tampering import (
        ControllerTamperingDetector,
        historian_frame,
        read_operator_log,
    )

    if not historian.is_file():
        _fail(f"{historian}: no such file")
    try:
        frame = historian_frame(pq.read_table(historian), device=device)
    except (OSError, ValueError) as exc:  # pyarrow's messages name the problem, not always the file
        _fail(f"{historian}: not a readable historian ({str(exc).replace(str(historian), '').strip(': ')})")
        return
    try:
        log = read_operator_log(operator_log) if operator_log is not None else []
    except OSError as exc:
        _fail(f"{operator_log}: cannot read ({exc.strerror})")
        return
    except ValueError as exc:  # already names the file and line
        _fail(str(exc))
        return
    times = np.array([float(t) for t in frame.timestamps or ()])
    cut = int(np.searchsorted(times, normal_until))
    try:
        det = ControllerTamperingDetector(plant, device=device).fit(frame.rows(0, cut))
    except ValueError as exc:
        _fail(f"{historian}: {exc}")
        return
    findings = det.check(frame, log)
    if as_json:
        click.echo(json.dumps({
            "plant": plant,
            "loops": [{"loop": m.loop.name, "alpha": m.alpha, "beta": m.beta, "sigma": m.sigma,
                       "threshold": m.threshold} for m in det.models_],
            "findings": [{"time_s": f.time_s, "kind": f.kind, "tags": list(f.tags), "detail": f.detail}
                         for f in findings],
        }))  # fmt: skip
        return
    for m in det.models_:
        click.echo(
            f"loop {m.loop.name}: law fitted on {m.rows_used} normal rows "
            f"(alpha {m.alpha:.3g}, beta {m.beta:.3g}, residual {m.sigma:.3g}, threshold {m.threshold:.3g})"
        )
    click.echo(f"{len(findings)} finding(s)")
    for f in findings:
        click.echo(f"  t={f.time_s:g}s  {f.kind}: {f.detail}")
