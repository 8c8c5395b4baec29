"""YAML values that remember the line they were written on, for ``FILE:LINE: reason`` errors.

Interlock's analysts edit YAML by hand (detection rules, baselines, drill scenarios, point
lists, firewall policies, playbooks), and a broken file is refused with the line to fix.
PyYAML's ``safe_load`` returns plain values with no position; its composer keeps a mark on
every node but leaves scalars untyped and keys unchecked. :func:`compose` walks the composed
nodes once into :class:`Node` values that carry both: the value and its 1-based line.

Written here because it is small (one walk over the node tree) and no maintained package does
only this: ruamel.yaml (maintained, 0.19 in 2026, a wheel is on disk but it is not a
dependency) keeps line info on its round-trip containers, but it is a second YAML parser with
YAML 1.2 typing (``yes``, ``010`` and friends read differently from PyYAML's 1.1), so every
loader's accepted input would shift; the gain is not worth the dependency.

Each loader keeps its own schema checks and messages; :class:`NodeError` carries the line and
what went wrong so it can word the error its own way.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Mode = Literal["strict", "pyyaml", "raw"]


@dataclass(frozen=True, slots=True)
class Node:
    """A YAML value with the (1-based) line it starts on; mappings also keep their keys' lines.

    ``value`` is ``dict[str, Node]`` for a mapping, ``list[Node]`` for a sequence, else the
    scalar (typed by YAML, or the text as written when composed with ``mode="raw"``).
    """

    value: Any
    line: int
    key_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, (dict, list))

    def mapping(self) -> dict[str, Node]:
        """The items of a mapping (an empty dict for anything else)."""
        return self.value if isinstance(self.value, dict) else {}

    def sequence(self) -> list[Node]:
        """The items of a sequence (an empty list for anything else)."""
        return self.value if isinstance(self.value, list) else []

    def key_line(self, key: str) -> int:
        """The line of ``key`` in this mapping, or the mapping's own line."""
        return self.key_lines.get(key, self.line)

    def plain(self) -> Any:
        """The value without lines: dicts, lists and scalars, as ``yaml.safe_load`` would give."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class NodeError(ValueError):
    """Text that is not usable YAML, with the line of the problem (``None``: no position known).

    ``kind`` says what went wrong, for loaders that word it their own way: ``syntax`` (PyYAML's
    ``problem`` is in ``problem``; ``cause`` is PyYAML's error), ``key`` (a key that is not text,
    ``key`` holds it) or ``duplicate`` (``key`` again, first written on ``first_line``).
    """

    def __init__(self, line: int | None, problem: str, *, kind: str = "syntax",
                 cause: yaml.YAMLError | None = None, key: Any = None, first_line: int = 0) -> None:
        super().__init__(f"{line if line is not None else '?'}: {problem}")
        self.line, self.problem, self.kind = line, problem, kind
        self.cause, self.key, self.first_line = cause, key, first_line

    def at(self, default: int) -> int:
        """The line, or ``default`` where PyYAML gave no position."""
        return self.line if self.line is not None else default


def located(path: Path | str, line: int | str, reason: str) -> str:
    """The one error form of every loader: ``FILE:LINE: reason``."""
    return f"{path}:{line}: {reason}"


def compose(text: str, *, mode: Mode = "strict") -> Node | None:
    """``text`` (one YAML document) as a :class:`Node`; ``None`` for an empty document.

    ``mode`` is how mapping keys and scalars are read:

    * ``strict`` (default): scalars typed by YAML; every key must be text and written once.
    * ``pyyaml``: scalars typed; keys as ``safe_load`` makes them (``<<`` merges, a later key
      wins), turned to text.
    * ``raw``: scalars and keys as written (PyYAML's untyped node text), a later key wins.

    Raises :class:`NodeError` for anything PyYAML refuses and, in ``strict``, for bad keys.
    """
    try:
        loader = yaml.SafeLoader(text)  # reads the text: control characters fail here
    except yaml.YAMLError as exc:
        raise NodeError(None, str(exc), cause=exc) from None
    try:
        node = loader.get_single_node()
        return None if node is None else _convert(loader, node, mode)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or ""
        raise NodeError(mark.line + 1 if mark is not None else None, problem, cause=exc) from None
    except yaml.YAMLError as exc:
        raise NodeError(None, str(exc), cause=exc) from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, mode: Mode) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        if mode == "pyyaml":
            loader.flatten_mapping(node)  # what SafeConstructor does for '<<' keys
        items: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if mode == "raw":
                key = str(key_node.value)
            else:
                typed = loader.construct_object(key_node)
                if mode == "pyyaml":
                    if not isinstance(typed, Hashable):  # PyYAML's own refusal, word for word
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark, "found unhashable key",
                            key_node.start_mark)
                    key = str(typed)
                elif not isinstance(typed, str):
                    raise NodeError(key_line, f"key {typed!r} is not text", kind="key", key=typed)
                elif typed in items:
                    raise NodeError(key_line, f"duplicate key '{typed}' (first on line "
                                    f"{key_lines[typed]})", kind="duplicate", key=typed,
                                    first_line=key_lines[typed])
                else:
                    key = typed
            items[key] = _convert(loader, value_node, mode)
            key_lines[key] = key_line
        return Node(items, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(loader, n, mode) for n in node.value], line)
    return Node(node.value if mode == "raw" else loader.construct_object(node), line)
