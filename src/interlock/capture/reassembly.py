"""TCP stream reassembly, one direction at a time.

Delivers a direction's bytes in sequence order exactly once: retransmissions are dropped, the new
tail of an overlapping segment is kept, out-of-order segments wait until the hole is filled.
A hole that never fills (the capture lost a segment) is skipped at once when the peer has
already acknowledged past it (the host got bytes the capture missed), else once too many
segments wait behind it, and at the end of the capture; the caller is told, so the protocol
session can start afresh after the gap. A direction whose first segment is one byte just
before the peer's ACK is a keep-alive probe: it starts the direction at the ACK, not as data.
Reassembly is a few lines of state per direction, which is why no library is used for it.
"""

from __future__ import annotations

MAX_PENDING_SEGMENTS = 64
MAX_PENDING_BYTES = 256 * 1024
_MOD = 1 << 32
_HALF = 1 << 31


Chunk = tuple[bytes, int, float]  # bytes, frame number and time of the segment that carried them


class Direction:
    """Sequence state of one direction of one TCP connection.

    Released chunks carry the frame that brought their bytes, so a PDU that waited behind a
    hole is still reported at its own frame (the evidence), not at the frame that freed it.
    """

    __slots__ = ("gaps", "next_seq", "peer_ack", "pending", "pending_bytes")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.peer_ack: int | None = None  # highest ACK the other side sent for this direction
        self.pending: dict[int, Chunk] = {}
        self.pending_bytes = 0
        self.gaps = 0

    def syn(self, seq: int) -> None:
        self.next_seq = (seq + 1) % _MOD
        self.pending.clear()
        self.pending_bytes = 0

    def acked(self, ack: int) -> list[Chunk]:
        """The peer acknowledged up to ``ack``: remember it, and release segments waiting
        behind a hole the peer has now acknowledged past."""
        prev = self.peer_ack
        if prev is None or 0 < (ack - prev) % _MOD < _HALF:
            self.peer_ack = ack
            if self.pending:
                return self._skip_acked_holes()
        return []

    def _hole_acked(self) -> bool:
        ack, nxt = self.peer_ack, self.next_seq
        return ack is not None and nxt is not None and 0 < (ack - nxt) % _MOD < _HALF

    def _skip_acked_holes(self) -> list[Chunk]:
        out: list[Chunk] = []
        while self.pending and self._hole_acked():
            out += self.skip_gap()
        return out

    def segment(self, seq: int, payload: bytes, frame: int = 0, ts: float = 0.0) -> tuple[list[Chunk], bool]:
        """In-order chunks this segment releases, and whether a gap was skipped first."""
        nxt = self.next_seq
        if nxt is None:  # capture started mid-stream: take this segment as the start
            ack = self.peer_ack
            if len(payload) <= 1 and ack is not None and (ack - seq) % _MOD == 1:
                self.next_seq = ack  # a keep-alive probe: one stale byte just before the ACK
                return [], False
            self.next_seq = (seq + len(payload)) % _MOD
            return [(payload, frame, ts)], False
        rel = (seq - nxt) % _MOD
        if rel >= _HALF:  # starts before next_seq: retransmission, maybe with new bytes
            rel -= _MOD
            if rel + len(payload) <= 0:
                return [], False
            payload = payload[-rel:]
            rel = 0
        if rel == 0:
            out = [(payload, frame, ts)]
            self.next_seq = (nxt + len(payload)) % _MOD
            if self.pending:
                self._drain(out)
            return out, False
        # a hole before this segment: if the peer already acknowledged past its start, the bytes
        # reached the host but not the capture, and waiting for them is pointless
        held = self.pending.get(seq)
        if held is None or len(held[0]) < len(payload):
            self.pending_bytes += len(payload) - (len(held[0]) if held else 0)
            self.pending[seq] = (payload, frame, ts)
        if self._hole_acked():
            return self._skip_acked_holes(), True
        if len(self.pending) > MAX_PENDING_SEGMENTS or self.pending_bytes > MAX_PENDING_BYTES:
            return self.skip_gap(), True
        return [], False

    def flush(self) -> list[Chunk]:
        """End of capture: skip every remaining hole and release what waited behind them."""
        out: list[Chunk] = []
        while self.pending:
            out += self.skip_gap()
        return out

    def skip_gap(self) -> list[Chunk]:
        """Give up on the hole: resume at the earliest waiting segment."""
        if not self.pending or self.next_seq is None:
            return []
        nxt = self.next_seq
        first = min(self.pending, key=lambda s: (s - nxt) % _MOD)
        self.next_seq = first
        self.gaps += 1
        out: list[Chunk] = []
        self._drain(out)
        return out

    def _drain(self, out: list[Chunk]) -> None:
        pending = self.pending
        while pending:
            nxt = self.next_seq
            assert nxt is not None
            progressed = False
            for seq in list(pending):
                rel = (seq - nxt) % _MOD
                if rel >= _HALF or rel == 0:
                    data, frame, ts = pending.pop(seq)
                    self.pending_bytes -= len(data)
                    if rel:
                        rel -= _MOD
                        if rel + len(data) <= 0:
                            progressed = True
                            continue
                        data = data[-rel:]
                    out.append((data, frame, ts))
                    self.next_seq = (nxt + len(data)) % _MOD
                    progressed = True
                    break
            if not progressed:
                return
