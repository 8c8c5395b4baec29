"""Agreement with tshark, gathered from every protocol's comparison and printed as one table."""

from __future__ import annotations

from collections import defaultdict

# protocol -> capture -> (frames compared, frames agreeing, frames that differ for a listed reason)
RESULTS: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)


def record(protocol: str, capture: str, compared: int, agreeing: int, explained: int = 0) -> None:
    RESULTS[protocol][capture] = (compared, agreeing, explained)


def table() -> list[str]:
    lines = [
        f"{'protocol':10s} {'captures':>8s} {'frames':>8s} {'agree':>8s} {'explained':>9s} {'agree %':>8s}"
    ]
    for protocol in sorted(RESULTS):
        rows = RESULTS[protocol].values()
        compared = sum(r[0] for r in rows)
        agreeing = sum(r[1] for r in rows)
        explained = sum(r[2] for r in rows)
        pct = 100.0 * agreeing / compared if compared else 0.0
        lines.append(
            f"{protocol:10s} {len(rows):8d} {compared:8d} {agreeing:8d} {explained:9d} {pct:8.2f}"
        )
    return lines
