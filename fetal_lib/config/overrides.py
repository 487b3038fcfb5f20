"""Which parameters of a chapter run differ from its profile: recorded in metrics.json, shown at its top.

Two routes lead to a run that is not the profile's:

- ``fetal book --only CHAPTER --set KEY=VALUE``: the pipeline passes the overrides to the kernel
  in ``$FETAL_BOOK_OVERRIDES`` (JSON ``{chapter id: {key: value}}``, see :func:`environment`);
- a chapter run by hand (``papermill -p epochs 5``, or a parameters cell edited in JupyterLab):
  :func:`against_profile` compares the knobs the chapter resolved with the profile's values.

:func:`detect` merges both (the explicit ``--set`` wins) and never raises: a chapter outside the
registry, or a profile that cannot be read, simply reports no override.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from fetal_lib.config.chapter_spec import ChapterSpec
from fetal_lib.config.profiles import chapter_knobs, profile_seed

ENV_VAR = "FETAL_BOOK_OVERRIDES"


def environment(chapter: str, overrides: Mapping[str, Any]) -> dict[str, str]:
    """The kernel environment that carries ``overrides`` of ``chapter`` (empty when there are none)."""
    return {ENV_VAR: json.dumps({chapter: dict(overrides)}, sort_keys=True)} if overrides else {}


def from_environment(chapter: str) -> dict[str, Any]:
    """The ``--set`` overrides of ``chapter`` that ``fetal book`` passed to this process."""
    try:
        doc = json.loads(os.environ.get(ENV_VAR) or "{}")
    except json.JSONDecodeError:
        return {}
    found = doc.get(chapter) if isinstance(doc, dict) else None
    return dict(found) if isinstance(found, dict) else {}


def against_profile(spec: ChapterSpec | str, profile: str, parameters: Mapping[str, Any] | None, seed: Any = None) -> dict[str, Any]:
    """The knobs in ``parameters`` (and ``seed``) whose value is not the one ``profile`` gives the chapter
    ``spec`` declares ({} for a chapter known only by its id: nothing declared to compare with)."""
    if not isinstance(spec, ChapterSpec) or not parameters:
        return {}
    chapter = spec.id
    try:
        knobs = chapter_knobs(spec, profile)
        seed_here = profile_seed(profile, chapter)
    except Exception:  # an unknown profile, a chapter without a notebook: nothing to compare with
        return {}
    out = {k: v for k, v in parameters.items() if k in knobs and _differs(v, knobs[k])}
    if seed is not None and _differs(seed, seed_here):
        out["seed"] = seed
    return out


def _differs(value: Any, reference: Any) -> bool:
    """True when ``value`` is not ``reference`` once both are plain JSON (tuples are lists, 1.0 is 1)."""
    try:
        return json.loads(json.dumps(value, default=str)) != json.loads(json.dumps(reference, default=str))
    except (TypeError, ValueError):
        return value != reference


def detect(spec: ChapterSpec | str, profile: str, parameters: Mapping[str, Any] | None, seed: Any = None) -> dict[str, Any]:
    """Every parameter of this run that is not its profile's: hand-set ones, then the ``--set`` ones
    (``spec``: the chapter's declaration, or its id alone)."""
    chapter = spec.id if isinstance(spec, ChapterSpec) else spec
    return {**against_profile(spec, profile, parameters, seed), **from_environment(chapter)}


def describe(overrides: Mapping[str, Any]) -> str:
    """``epochs = 3, augment = False`` (Markdown code spans), or "" when there is none."""
    return ", ".join(f"`{k} = {v!r}`" for k, v in overrides.items())
