"""Read one figure out of a chapter's ``metrics`` by a path, e.g. ``test.hc_abs_diff_mean_mm``.

A path is segments joined by ``.``; a segment is a key, optionally followed by
``[field=value, ...]``, which picks the one record of the list under that key whose fields
equal those values (compared as text). A value ``@a.b`` is first read from the same metrics
by the path ``a.b``::

    audit[arm=source block].HC |diff| mean (mm)
    scores[task=planes, model=@deployed.planes].accuracy_ci

Keys may hold spaces and punctuation, but not ``.``, ``[``, ``]``, ``,`` or ``=``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

_SEGMENT = re.compile(r"^(?P<key>[^.\[\]=,]+?)\s*(?:\[(?P<where>[^\[\]]*)\])?$")
_INTERVAL = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*-\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$")


class MetricPathError(LookupError):
    """A path that is malformed or names nothing in the metrics; the message says which part."""


class MetricPathEmpty(MetricPathError):
    """A path that runs into a null (a section the run did not compute) before its end."""


@dataclass(frozen=True)
class Segment:
    """One step of a path: a key, and the record filter applied to the list under it."""

    key: str
    where: tuple[tuple[str, str], ...] = ()


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside square brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise MetricPathError(f"metric path {text!r}: unbalanced ']'")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise MetricPathError(f"metric path {text!r}: unbalanced '['")
    parts.append(text[start:])
    return parts


def parse(path: str) -> tuple[Segment, ...]:
    """The segments of ``path`` (MetricPathError when it is malformed)."""
    segments = []
    for raw in _split_top(str(path), "."):
        m = _SEGMENT.match(raw.strip())
        if not m:
            raise MetricPathError(f"metric path {path!r}: bad segment {raw!r}")
        where: list[tuple[str, str]] = []
        if m.group("where") is not None:
            for cond in m.group("where").split(","):
                field, eq, value = cond.partition("=")
                if not eq or not field.strip() or not value.strip():
                    raise MetricPathError(f"metric path {path!r}: bad filter {cond!r} (want field=value)")
                where.append((field.strip(), value.strip()))
        segments.append(Segment(m.group("key").strip(), tuple(where)))
    return tuple(segments)


def keys(path: str) -> list[str]:
    """Every metrics key ``path`` names, filter fields and ``@`` references included, in order."""
    out: list[str] = []
    for seg in parse(path):
        out.append(seg.key)
        for field, value in seg.where:
            out.append(field)
            if value.startswith("@"):
                out += keys(value[1:])
    return out


def references(path: str) -> list[str]:
    """The ``@`` paths inside the filters of ``path``."""
    return [value[1:] for seg in parse(path) for _, value in seg.where if value.startswith("@")]


def _text(value: Any) -> str:
    return str(value)


def resolve(metrics: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` in ``metrics`` (MetricPathError naming the missing part)."""
    node: Any = metrics
    walked = ""
    for seg in parse(path):
        if node is None:
            raise MetricPathEmpty(f"{walked!r} is empty in the metrics")
        walked = f"{walked}.{seg.key}" if walked else seg.key
        if not isinstance(node, Mapping) or seg.key not in node:
            raise MetricPathError(f"no {walked!r} in the metrics")
        node = node[seg.key]
        if seg.where:
            wanted = {f: _text(resolve(metrics, v[1:])) if v.startswith("@") else v for f, v in seg.where}
            if node is None:
                raise MetricPathEmpty(f"{walked!r} is empty in the metrics")
            if not isinstance(node, list):
                raise MetricPathError(f"{walked!r} is not a list of records")
            hits = [r for r in node if isinstance(r, Mapping) and all(f in r and _text(r[f]) == v for f, v in wanted.items())]
            label = ", ".join(f"{f}={v}" for f, v in wanted.items())
            if len(hits) != 1:
                raise MetricPathError(f"{len(hits)} records of {walked!r} with {label} (want exactly one)")
            node = hits[0]
            walked += f"[{label}]"
    return node


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (None, NaN, text, bools are not figures)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def interval(value: Any) -> tuple[float, float] | None:
    """A CI from ``[low, high]`` or from text ``"low-high"`` (``"-0.19-0.00"`` too); None if absent."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = number(value[0]), number(value[1])
    elif isinstance(value, str) and (m := _INTERVAL.match(value)):
        low, high = number(m.group(1)), number(m.group(2))
    else:
        return None
    return (low, high) if low is not None and high is not None else None
