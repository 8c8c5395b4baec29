"""A DNP3 master's side of the transport function, sans I/O: fragments to link frames and back.

Both of Interlock's masters (the range's SCADA master, :mod:`interlock.range.devices.masters`,
and the drill's attacker, :mod:`interlock.drill.techniques.dnp3`) send their requests and read
the outstation's responses through these two, so they segment and reassemble the same way.
"""

from __future__ import annotations

from .fields import MAX_USER_DATA, PrimaryFunction
from .link import LinkFrame, TransportSegment, build_frame, build_segment

MAX_SEGMENT_DATA = MAX_USER_DATA - 1  # 249: the transport header takes one octet of a frame's 250


class Segmenter:
    """A master's outgoing application fragments as link frames: transport segments of at most
    249 octets, numbered modulo 64 across fragments, each in an unconfirmed user data frame
    (DIR and PRM set) from ``master`` to ``outstation``."""

    def __init__(self, master: int, outstation: int) -> None:
        self.master = master
        self.outstation = outstation
        self.seq = 0

    def frames(self, fragment: bytes) -> list[bytes]:
        """The link frames carrying ``fragment`` (one empty segment for an empty fragment)."""
        size = MAX_SEGMENT_DATA
        chunks = [fragment[i:i + size] for i in range(0, len(fragment), size)] or [b""]
        frames = []
        for k, chunk in enumerate(chunks):
            segment = TransportSegment(fin=k == len(chunks) - 1, fir=k == 0, seq=self.seq, data=chunk)
            self.seq = (self.seq + 1) & 0x3F
            frames.append(build_frame(LinkFrame(dir=True, prm=True, fcb=False, fcv=False,
                                                function=PrimaryFunction.UNCONFIRMED_USER_DATA,
                                                destination=self.outstation, source=self.master,
                                                user_data=build_segment(segment))))
        return frames


class Reassembler:
    """Incoming transport segments joined into application fragments: FIR starts a fragment
    afresh, FIN completes it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def add(self, segment: TransportSegment) -> bytes | None:
        """The whole fragment when ``segment`` is its last, else None."""
        if segment.fir:
            self._parts = []
        self._parts.append(segment.data)
        if not segment.fin:
            return None
        fragment = b"".join(self._parts)
        self._parts = []
        return fragment
