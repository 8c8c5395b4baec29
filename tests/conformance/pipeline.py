"""Operations per frame as the full decoder produces them (reader, reassembly, recognition).

Conformance tests compare these with tshark, so what they check is what `interlock decode`
writes, not a codec fed by a test's own stand-in for the capture layer.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from interlock.capture.decode import decode_records
from interlock.protocols.base import Direction, OpClass, Operation


def ops_by_frame(path: Path, *protocols: str) -> dict[int, list[Operation]]:
    """Operations of the given protocols grouped by the frame that completed them."""
    out: dict[int, list[Operation]] = defaultdict(list)
    for row in decode_records(path):
        if row["protocol"] not in protocols:
            continue
        detail = row["detail"]
        values = row["values"]
        out[int(row["frame"])].append(  # type: ignore[call-overload]
            Operation(
                protocol=str(row["protocol"]),
                direction=Direction(row["direction"]),
                op_class=OpClass(row["op_class"]),
                function_code=row["function_code"],  # type: ignore[arg-type]
                function=row["function"],  # type: ignore[arg-type]
                unit=row["unit"],  # type: ignore[arg-type]
                transaction=row["transaction"],  # type: ignore[arg-type]
                address=row["address"],  # type: ignore[arg-type]
                count=row["count"],  # type: ignore[arg-type]
                values=None if values is None else tuple(values),  # type: ignore[arg-type]
                object=row["object"],  # type: ignore[arg-type]
                status=row["status"],  # type: ignore[arg-type]
                malformed=row["malformed"],  # type: ignore[arg-type]
                detail=None if detail is None else json.loads(str(detail)),
            )
        )
    return dict(out)
