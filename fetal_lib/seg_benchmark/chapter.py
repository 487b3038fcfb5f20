"""Chapter 2's set-up in one call: the profile's knobs resolved, chapter 1's split of HC18 loaded,
the run started and its banner shown (``notebooks/02_seg_benchmark.py`` calls :func:`start`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fetal_lib.hc import pipeline as hc_pipeline
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.seg_benchmark import pipeline
from fetal_lib.seg_benchmark.spec import SPEC


@dataclass
class ChapterStart:
    """What the chapter's later cells need from its set-up."""

    run: ChapterRun
    settings: dict[str, Any]  # every knob's value (the profile's, then the parameters cell's)
    profile: str
    seed: int
    results_dir: Path
    arch_names: list[str]  # trained in this order
    data: Any  # fetal_lib.hc.pipeline.HCData: chapter 1's split by subject
    precision_choice: Any  # fetal_lib.training.precision.PrecisionChoice
    t_start: float  # time.perf_counter() when the set-up began

    @property
    def results_root(self) -> Path:
        """The folder that holds every chapter's results (chapter 1's beside this one)."""
        return self.results_dir.parent


def split_sentence(data) -> str:
    """The data source and chapter 1's split, in words (Markdown)."""
    parts = ", ".join(f"{k} {len(v)} images" for k, v in data.parts.items())
    return f"Data: {data.source.describe(relative=True)}. Split: chapter 1's, by subject: {parts}."


def start(params: Mapping[str, Any]) -> ChapterStart:
    """Resolve the profile's knobs (``params``: the notebook's globals, its parameters cell's names
    set), load chapter 1's split, start the :class:`~fetal_lib.results.ChapterRun` and show its
    banner and the split."""
    from IPython.display import Markdown, display  # notebook-only dependency

    t_start = time.perf_counter()
    profile, seed = params["profile"], params["seed"]
    settings = pipeline.profile_settings(profile, {name: params[name] for name in SPEC.knob_names()})
    arch_names = pipeline.parse_archs(settings["archs"])
    pipeline.fixed_arch(settings, arch_names)  # a deploy_arch outside archs fails here, not after the training
    precision_choice = pipeline.precision_choice(settings)
    data = hc_pipeline.load_data(params["data_dir"], params["data_source"], seed, int(settings["max_images"]))
    run = ChapterRun(SPEC, profile, params["data_dir"], params["results_dir"], seed, data_status([data.source]), parameters=settings,
                     compute={"precision": precision_choice.to_dict(), **pipeline.device_choice(settings)})
    run.banner()
    display(Markdown(split_sentence(data)))
    return ChapterStart(run, settings, profile, seed, Path(params["results_dir"]), arch_names, data, precision_choice, t_start)
