"""The range historian: one long table of (plant time, wall time, device, tag, value, source).

``source`` is ``hmi`` for what the SCADA poller read over the network (what operators saw) and
``truth`` for the plant's noise-free state at the same instant (what really happened), so a
deceived operator can be shown beside the truth. Written as Parquet with pyarrow; in stepped mode
wall time is the virtual clock's, so two runs with the same seed give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        pa.field("plant_time_s", pa.float64()),
        pa.field("wall_time", pa.float64()),
        pa.field("device", pa.string()),
        pa.field("tag", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("source", pa.string()),
    ]
)


class Historian:
    def __init__(self) -> None:
        self._cols: tuple[list[float], list[float], list[str], list[str], list[float], list[str]] = (
            [],
            [],
            [],
            [],
            [],
            [],
        )

    def add(
        self, plant_time_s: float, wall_time: float, device: str, values: dict[str, float], source: str
    ) -> None:
        t, w, d, g, v, s = self._cols
        for tag, value in values.items():
            t.append(plant_time_s)
            w.append(wall_time)
            d.append(device)
            g.append(tag)
            v.append(float(value))
            s.append(source)

    def __len__(self) -> int:
        return len(self._cols[0])

    def table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(self._cols, SCHEMA, strict=True)], schema=SCHEMA
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # No statistics timestamps or created_by variance: the file is a function of its rows.
        pq.write_table(self.table(), path, compression="zstd", write_statistics=False)

    def latest(self, source: str = "hmi") -> dict[tuple[str, str], float]:
        """The last value of every (device, tag) from ``source``."""
        out: dict[tuple[str, str], float] = {}
        _, _, d, g, v, s = self._cols
        for i in range(len(d) - 1, -1, -1):
            if s[i] == source and (d[i], g[i]) not in out:
                out[(d[i], g[i])] = v[i]
        return out
