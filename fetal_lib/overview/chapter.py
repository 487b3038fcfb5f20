"""Chapter 0's set-up in one call: the profile's knobs, every dataset resolved (real or phantom), the real
ones verified, the run started and its banner shown (``notebooks/00_data.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.data import DATASET_NAMES
from fetal_lib.data.sources import resolve
from fetal_lib.data.verify import verify
from fetal_lib.overview import status
from fetal_lib.overview.spec import SPEC
from fetal_lib.results import ChapterRun


@dataclass
class ChapterStart:
    """What the chapter's cells use after the set-up."""

    run: ChapterRun
    settings: dict[str, Any]  # the knobs, resolved from the profile (and any override)
    sources: dict[str, Any]  # dataset name -> fetal_lib.data.sources.DatasetSource
    report: Any | None  # fetal_lib.data.verify.VerifyReport of the real datasets; None when all are phantoms
    seed: int

    @property
    def real(self) -> list[str]:
        """The datasets read from real data (the others are phantoms)."""
        return [name for name, src in self.sources.items() if not src.is_phantom]


def start(params: Mapping[str, Any]) -> ChapterStart:
    """Resolve the knobs (``params``: the parameters cell's names, e.g. ``globals()``; a knob left None
    takes the profile's value), resolve each dataset, verify the real ones (checksums and formats;
    phantoms are synthetic: nothing to check), start the :class:`~fetal_lib.results.ChapterRun` and show its banner."""
    profile, data_dir, data_source = params["profile"], params["data_dir"], params["data_source"]
    seed = params["seed"]
    settings = chapter_knobs(SPEC, profile, {name: params.get(name) for name in SPEC.knob_names()})
    sources = {name: resolve(name, data_dir or None, data_source) for name in DATASET_NAMES}
    real = [name for name, src in sources.items() if not src.is_phantom]
    report = verify(data_dir or None, names=real) if real else None
    run = ChapterRun(SPEC, profile, data_dir, params["results_dir"], seed, status.run_status(sources, report),
                     parameters={"data_source": data_source, **settings})
    run.banner()
    return ChapterStart(run, settings, sources, report, seed)
