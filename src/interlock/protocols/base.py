"""What every protocol folder shares: directions, malformed values, operations, the spec.

Codecs are sans-I/O (the h11 pattern): they take bytes and return values; they never raise on
bad input (a ``Malformed`` value is returned instead), never open a socket or a file and never
read a clock. A protocol's *session* turns a byte stream (one TCP connection or a run of UDP
datagrams) into :class:`Operation` values, one per industrial operation, which the capture layer
stamps with frame number, time and flow to make a record of the schema in ``docs/records.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol


class Direction(enum.StrEnum):
    """Who sent a message: the master/client (request) or the outstation/server (response)."""

    REQUEST = "request"
    RESPONSE = "response"


class OpClass(enum.StrEnum):
    """What an operation does to the plant, coarse enough for rules and baselines."""

    READ = "read"
    WRITE = "write"
    COMMAND = "command"  # operates an actuator: CROB, IEC-104 commands, select/operate
    CONTROL = "control"  # changes the controller itself: stop/run, restart, download
    DIAGNOSTIC = "diagnostic"
    IDENTIFY = "identify"  # device identification, SZL reads
    FILE = "file"
    SESSION = "session"  # connection set-up, keep-alive, acknowledgements
    MONITOR = "monitor"  # data sent by an outstation without a read (spontaneous, unsolicited)
    MALFORMED = "malformed"
    OTHER = "other"


class Probe(enum.Enum):
    """Answer of a content probe: the bytes are this protocol, are not, or it is too early."""

    YES = "yes"
    NO = "no"
    NEED_MORE = "need_more"


@dataclass(frozen=True, slots=True)
class Malformed:
    """A PDU that breaks its spec. Returned, never raised: a malformed frame is a finding."""

    reason: str  # a name from the protocol's reason enum, e.g. "BAD_LENGTH"
    offset: int  # where in the given bytes the problem was found
    raw: bytes = b""
    detail: str = ""


class Operation(NamedTuple):
    """One industrial operation decoded from a stream, before the capture adds frame and flow.

    Field meanings are those of ``docs/records.md``. ``values`` carries numbers only (booleans
    as 0/1) so that detectors can model them; anything protocol specific goes to ``detail``.
    A NamedTuple rather than a frozen dataclass: it is just as immutable and builds 3.5 times
    faster (0.4 against 1.4 us), and one is built per PDU on the decoder's hot path.
    """

    protocol: str
    direction: Direction
    op_class: OpClass
    function_code: int | None = None
    function: str | None = None
    unit: int | None = None
    transaction: int | None = None
    address: int | None = None
    count: int | None = None  # type: ignore[assignment]  # shadows tuple.count on purpose
    values: tuple[float, ...] | None = None
    object: str | None = None
    status: str | None = None
    malformed: str | None = None
    detail: dict[str, Any] | None = None


class Session(Protocol):
    """Stream state of one conversation (one TCP connection, or one UDP 5-tuple).

    ``feed`` takes the next bytes of one direction, in order, and returns the operations that
    those bytes completed. ``from_client`` is True for bytes sent by the connection's initiator
    (the master, the SCADA, the engineering station).
    """

    def feed(self, data: bytes, from_client: bool) -> list[Operation]: ...

    def lost(self, from_client: bool) -> None:
        """Bytes of one direction never arrived (a capture gap): drop that direction's partial
        PDU and resynchronise on what comes next; pairing state of the conversation is kept."""


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """Everything the capture layer needs to know of a protocol, in one descriptor."""

    name: str
    tcp_ports: frozenset[int]
    udp_ports: frozenset[int]
    probe: Callable[[bytes, bool], Probe]
    session: Callable[[], Session]
