"""The one ``interlock`` command and its subcommands.

Bad input ends with one line on stderr naming the file and the problem, and exit code 2;
records decoded before the problem are written and kept.
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import IO, Any, BinaryIO

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from interlock import __version__
from interlock.capture.decode import Decoder, Stats, open_capture
from interlock.capture.output import FORMATS, CsvWriter, JsonlWriter, ParquetWriter, Writer
from interlock.capture.pcap import CaptureError, read_frames

PROGRESS_MIN_BYTES = 8 << 20  # smaller files finish before a bar would help
err = Console(stderr=True)
if not err.is_terminal:
    err.width = 120  # logs and pipes: do not squeeze the summary into 80 columns


class _Counted:
    """A file wrapper that advances a progress bar as bytes are read."""

    def __init__(self, fh: BinaryIO, progress: Progress, task: Any) -> None:
        self.fh, self.progress, self.task = fh, progress, task

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.progress.advance(self.task, len(data))
        return data


def fail(message: str) -> None:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="interlock")
def main() -> None:
    """Interlock: see, detect, neutralize, drill and prove on industrial control networks."""


def sample_capture() -> Path:
    """The small capture bundled with the package: Modbus, DNP3, S7comm and IEC-104."""
    return Path(str(resources.files("interlock") / "data" / "sample.pcap"))


@main.command()
@click.argument("captures", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Output file (default: stdout for jsonl/csv)."
)
@click.option("--sample", is_flag=True, help="Decode the sample capture bundled with Interlock.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")
def decode(captures: tuple[Path, ...], fmt: str, output: Path | None, sample: bool, quiet: bool) -> None:
    """Decode ICS operations (Modbus/TCP, DNP3, S7comm, IEC-104) from pcap/pcapng CAPTURES."""
    if sample:
        captures = (*captures, sample_capture())
    if not captures:
        fail("no capture given: name one or more pcap/pcapng files, or use --sample")
    if fmt == "parquet" and output is None:
        fail("parquet needs an output file: add -o FILE.parquet")
    stats_all: list[tuple[Path, Stats]] = []
    # The decoder holds tens of thousands of small objects per batch; the default GC
    # thresholds scan them over and over for no garbage (about 7% of decode time).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    with ExitStack() as stack:
        writer = _open_writer(stack, fmt, output)
        stack.callback(writer.close)
        for path in captures:
            try:
                stats = _decode_one(path, writer, quiet)
            except CaptureError as exc:
                writer.close()
                fail(str(exc))
            stats_all.append((path, stats))
    if not quiet:
        _summary(stats_all)


def _open_writer(stack: ExitStack, fmt: str, output: Path | None) -> Writer:
    try:
        if fmt == "parquet":
            assert output is not None
            return ParquetWriter(output)
        if fmt == "csv":
            out_b: IO[bytes] = stack.enter_context(output.open("wb")) if output else sys.stdout.buffer
            return CsvWriter(out_b)
        out_t: IO[str] = (
            stack.enter_context(output.open("w", encoding="utf-8")) if output else sys.stdout
        )
        return JsonlWriter(out_t)
    except OSError as exc:
        fail(f"{output}: cannot write ({exc.strerror})")
        raise  # unreachable: fail exits


def _decode_one(path: Path, writer: Writer, quiet: bool) -> Stats:
    decoder = Decoder()
    with open_capture(path) as fh:
        size = path.stat().st_size
        if quiet or size < PROGRESS_MIN_BYTES:
            for batch in decoder.frames(read_frames(fh, str(path))):
                writer.write(batch)
            return decoder.stats
        columns = (
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task(f"decoding {path.name}", total=size)
            counted: Any = _Counted(fh, progress, task)
            for batch in decoder.frames(read_frames(counted, str(path))):
                writer.write(batch)
    return decoder.stats


def _summary(stats_all: list[tuple[Path, Stats]]) -> None:
    table = Table(title="interlock decode", show_lines=False)
    for col in ("capture", "frames", "protocol", "flows", "operations", "malformed"):
        table.add_column(col, justify="right" if col not in ("capture", "protocol") else "left")
    for path, s in stats_all:
        protocols = sorted(set(s.operations) | set(s.flows))
        if not protocols:
            table.add_row(path.name, str(s.frames), "-", "0", "0", "0")
        for i, proto in enumerate(protocols):
            table.add_row(
                path.name if i == 0 else "",
                str(s.frames) if i == 0 else "",
                proto,
                str(s.flows[proto]),
                str(s.operations[proto]),
                str(s.malformed[proto]),
            )
    err.print(table)
    skipped = sum((s.skipped for _, s in stats_all), start=Counter[str]())
    gaps = sum(s.tcp_gaps for _, s in stats_all)
    if skipped or gaps:
        parts = [f"{k} {v}" for k, v in sorted(skipped.items())]
        if gaps:
            parts.append(f"tcp gaps skipped {gaps}")
        err.print("frames not decoded: " + ", ".join(parts))


# Subcommands that live with their packages are registered here, one line each.
from interlock.respond.cli import firewall  # noqa: E402, I001
main.add_command(firewall)
from interlock.detect.sensor_cli import sensor  # noqa: E402, I001
main.add_command(sensor)
from interlock.detect.process.cli import eval_group  # noqa: E402, I001
main.add_command(eval_group)
from interlock.inventory.cli import inventory  # noqa: E402, I001
main.add_command(inventory)
from interlock.detect.cli import detect  # noqa: E402, I001
main.add_command(detect)
from interlock.evidence.cli import evidence  # noqa: E402, I001
main.add_command(evidence)
from interlock.detect.learn_cli import learn  # noqa: E402, I001
main.add_command(learn)
from interlock.drill.cli import drill  # noqa: E402, I001
main.add_command(drill)
from interlock.respond.respond_cli import respond  # noqa: E402, I001
main.add_command(respond)
from interlock.detect.eval_network_cli import eval_network  # noqa: E402, I001
eval_group.add_command(eval_network)
from interlock.range.cli import range_group  # noqa: E402, I001
main.add_command(range_group)


if __name__ == "__main__":
    main()
