"""Chapter 2's settings as a command takes them: its architectures by name, and ``--set`` overrides
checked against the chapter's knobs (``fetal seg`` and ``fetal bench seg`` share these)."""

from __future__ import annotations

from typing import Any, Sequence

from fetal_lib.config.profiles import parse_overrides
from fetal_lib.errors import FetalInputError
from fetal_lib.seg_benchmark import pipeline
from fetal_lib.seg_benchmark.spec import SPEC
from fetal_lib.networks import torch as torch_nets
from fetal_lib.torch_segmenter import SEGMENTERS
from fetal_lib.training import precision as precision_mod

# Knobs --set cannot change: a mapping (edit the profile) or one that --arch chooses.
NOT_SETTABLE = {
    "arch_options": "it is a mapping of each architecture's constructor options; edit the seg_benchmark: section of "
                    "profiles/<profile>.yaml (or copy the profile) instead",
}


def registered_archs() -> list[str]:
    """The chapter's architectures (:data:`~fetal_lib.torch_segmenter.SEGMENTERS`, in its order)
    that the torch registry can build now."""

    known = set(torch_nets.names())
    return [a for a in SEGMENTERS if a in known]


def check_archs(text: str | Sequence[str], option: str = "--arch") -> list[str]:
    """Architecture names (comma list or sequence), each a chapter-2 segmenter that is registered.

    Raises:
        FetalInputError: an unknown name, or one the registry does not hold yet (the message lists
            the known and the registered names).
    """

    try:
        names = pipeline.parse_archs(text)
    except ValueError as exc:
        raise FetalInputError(None, f"{option}: {exc}") from None
    ready = registered_archs()
    missing = [a for a in names if a not in ready]
    if missing:
        raise FetalInputError(None, f"{option}: {', '.join(missing)} not registered in fetal_lib.networks.torch yet; "
                                    f"available now: {', '.join(ready) or 'none'}")
    return names


def settings_from_args(profile: str, items: Sequence[str] | None, refuse: dict[str, str] | None = None) -> dict[str, Any]:
    """The profile's ``seg_benchmark:`` knobs with the ``--set KEY=VALUE`` overrides.

    Raises:
        FetalInputError: an override that is malformed, unknown, of the wrong type, or of a knob
            that cannot be set from the command line (``arch_options``, and those in ``refuse``).
    """

    refuse = {**NOT_SETTABLE, **(refuse or {})}
    for item in items or []:
        key = str(item).partition("=")[0].strip()
        if key in refuse:
            raise FetalInputError(None, f"--set {key}: cannot be set with --set: {refuse[key]}")
    try:
        overrides = parse_overrides(SPEC, list(items or []), {"precision": precision_mod.choices("torch")})
        return pipeline.profile_settings(profile, overrides)
    except ValueError as exc:
        raise FetalInputError(None, f"--set: {exc}") from None
