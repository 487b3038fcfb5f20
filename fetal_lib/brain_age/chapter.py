"""Chapter 5's set-up in one call: the profile resolved, the data found, the run started, the subjects counted.

``start(globals())`` in the chapter's first code cell resolves every knob from the profile and the
parameters cell, resolves the data source and the training precision on the chosen device, starts
the :class:`~fetal_lib.results.ChapterRun` with its banner, loads the subjects and shows what the data
root holds beside the source's figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from fetal_lib.brain_age import dataset, pipeline, report
from fetal_lib.brain_age.dataset import Subject
from fetal_lib.brain_age.spec import SPEC
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.data.sources import resolve
from fetal_lib.results import ChapterRun, data_status

FEATURE_KINDS = ("soft", "hard")


@dataclass
class ChapterStart:
    """What the set-up cell hands to the rest of the chapter."""

    run: ChapterRun
    settings: dict[str, Any]  # every knob, resolved (the run's parameters: the nested selection updates its four deploy knobs)
    profile: str
    seed: int
    source: Any  # fetal_lib.data.sources.DatasetSource
    subjects: list[Subject]
    precision: Any  # fetal_lib.training.precision.PrecisionChoice of the segmenter's training
    t_start: float = field(default_factory=time.perf_counter)  # perf_counter() at the start (s)


def start(params: Mapping[str, Any], show: bool = True) -> ChapterStart:
    """The set-up of chapter 5 from its parameters cell (``globals()``: ``profile``, ``data_dir``,
    ``data_source``, ``results_dir``, ``seed`` and every knob of :data:`SPEC`, None for the profile's).

    Raises:
        ValueError: ``deploy_features`` neither soft nor hard.
    """
    from IPython.display import Markdown, display

    t_start = time.perf_counter()
    profile, data_dir, seed = str(params["profile"]), params["data_dir"], int(params["seed"])
    settings = chapter_knobs(SPEC, profile, {name: params[name] for name in SPEC.knob_names()})
    if settings["deploy_features"] not in FEATURE_KINDS:
        raise ValueError(f"deploy_features must be 'soft' or 'hard', not {settings['deploy_features']!r}")
    source = resolve("brain_age", data_dir or None, source=params["data_source"])
    precision = pipeline.precision_choice(settings["seg_precision"], device=settings["device"])
    run = ChapterRun(SPEC, profile, data_dir, params["results_dir"], seed, data_status([source]), parameters=settings,
                     compute={"precision": precision.to_dict(), **pipeline.device_choice(settings["device"])})
    if show:
        run.banner()
        display(Markdown(f"Data: {source.describe(relative=True)}"))
    subjects = dataset.load(source.root)
    run.table(report.subjects_table(subjects), "subjects", show=show)
    if show:
        display(Markdown(report.source_sentence() + " " + report.data_sentence(subjects)))
    return ChapterStart(run, settings, profile, seed, source, subjects, precision, t_start)
