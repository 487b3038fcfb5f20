"""Chapter 3's set-up in one call: the Keras backend chosen before Keras is imported, the profile's
knobs resolved, every task's data loaded with its grouped split, the run started with its banner,
and each task's input resolved (head crop or whole image; the phantom fallback without a head
finder). ``notebooks/03_us_classification.py`` calls :func:`start`.

Nothing this module imports at the top imports Keras: :func:`start` sets the backend first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fetal_lib.paths import shown
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.training import keras_backend
from fetal_lib.training.keras import configure as configure_keras
from fetal_lib.us import ensemble, pipeline, report
from fetal_lib.us.spec import SPEC
from fetal_lib.us.tasks import load_task


@dataclass
class ChapterStart:
    """What the chapter's later cells need from its set-up."""

    run: ChapterRun
    settings: dict[str, Any]  # every knob's value (the profile's, then the parameters cell's)
    profile: str
    seed: int
    data_dir: str
    data_source: str
    results_dir: Path
    task_names: list[str]
    arch_names: list[str]
    datasets: dict[str, Any]  # task -> fetal_lib.us.tasks.TaskData (grouped split)
    task_cfg: dict[str, dict[str, Any]]  # task -> its settings (pipeline.task_settings; whole images in the phantom fallback)
    finder: Any  # fetal_lib.us.head_crop.HeadFinder, or None
    precision_choice: Any  # fetal_lib.training.precision.PrecisionChoice
    keras_choice: tuple[str, str]  # (backend, why)
    t_start: float  # time.perf_counter() when the set-up began

    @property
    def results_root(self) -> Path:
        """The folder that holds every chapter's results (and ``us_cv/``)."""
        return self.results_dir.parent

    @property
    def candidate_names(self) -> list[str]:
        """What deployment chooses among per task: the architectures, and their ensemble where the ``ensemble`` knob scores it."""
        return self.arch_names + ([ensemble.NAME] if self.settings.get("ensemble") and len(self.arch_names) >= 2 else [])

    @property
    def cache(self) -> Path:
        """The network inputs' cache: ``<build>/cache/us``."""
        return self.results_dir.parent.parent / "cache" / "us"


def keras_sentence(keras_choice: tuple[str, str]) -> str:
    """Which backend Keras runs on, where, and why (Markdown)."""
    return f"Keras runs on **{keras_backend.name()}** ({keras_backend.device()}): {keras_choice[1]}."


def start(params: Mapping[str, Any]) -> ChapterStart:
    """Set the chapter up from ``params`` (the notebook's globals, its parameters cell's names set).

    In order: the Keras backend (``KERAS_BACKEND``, else auto: torch where only torch sees a GPU),
    before Keras is imported; Keras's threads and seed; the knobs; every architecture's training
    configuration checked (an unknown network or weights that cannot fit stop the chapter before
    any training); the tasks' data; the run; each task's input (:func:`fetal_lib.us.pipeline.resolve_inputs`).
    Shows the banner (with the phantom fallback's warning), the backend and which Xception trains.
    """
    from IPython.display import Markdown, display  # notebook-only dependency

    keras_choice = keras_backend.apply_choice()
    t_start = time.perf_counter()
    profile, seed, data_dir, data_source = params["profile"], params["seed"], params["data_dir"], params["data_source"]
    configure_keras(threads=2, seed=seed)
    settings = pipeline.profile_settings(profile, {name: params[name] for name in SPEC.knob_names()})
    task_names, arch_names = pipeline.split_names(settings["tasks"]), pipeline.split_names(settings["archs"])
    precision_choice = pipeline.precision_choice(settings)
    for arch in arch_names:
        pipeline.train_config(settings, arch, seed)
    datasets = pipeline.align_splits({t: load_task(t, data_dir, data_source, seed) for t in task_names}, settings,
                                     lambda t: load_task(t, data_dir, data_source, seed))
    run = ChapterRun(SPEC, profile, data_dir, params["results_dir"], seed, data_status([d.source for d in datasets.values()]),
                     parameters=settings,
                     compute={"precision": precision_choice.to_dict(), "keras": {**keras_backend.describe(), "choice": keras_choice[1]}})
    inputs = pipeline.resolve_inputs(settings, task_names, datasets)
    pipeline.check_task_sources(inputs.settings, task_names, arch_names)  # a leaking task_init stops the chapter before training
    run.banner()
    if inputs.note:
        run.warn(inputs.note)
    display(Markdown(keras_sentence(keras_choice)))
    weights = settings["xception_weights"]
    display(Markdown(report.xception_sentence((settings["arch_options"] or {}).get("xception") or {}, shown(weights) if weights else None)))
    return ChapterStart(run, settings, profile, seed, data_dir, data_source, Path(params["results_dir"]), task_names, arch_names,
                        datasets, inputs.settings, inputs.finder, precision_choice, keras_choice, t_start)
