"""Chapter 4's set-up in one call: the profile resolved, Keras configured, the volumes loaded, the run started.

``start(globals())`` in the chapter's first code cell does, in this order: choose the Keras backend
(before Keras is imported), configure Keras (threads, seed), resolve every knob from the profile and
the parameters cell, resolve the training precision, load and prepare the volumes, start the
:class:`~fetal_lib.results.ChapterRun`, and show the banner, the backend, the source's figures and the
network's description.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from fetal_lib import anchors
from fetal_lib.ga_mri import volume_file
from fetal_lib.ga_mri import pipeline
from fetal_lib.ga_mri.spec import SPEC
from fetal_lib.paths import shown
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.training import keras_backend

VGG16_WIDTHS = [64, 128, 256, 512, 512]


@dataclass
class ChapterStart:
    """What the set-up cell hands to the rest of the chapter."""

    run: ChapterRun
    settings: dict[str, Any]  # every knob, resolved
    profile: str
    seed: int
    precision: Any  # fetal_lib.training.precision.PrecisionChoice
    prep: Any  # fetal_lib.ga_mri.volumes.PreprocessConfig
    source: Any  # fetal_lib.data.sources.DatasetSource
    volumes: list[pipeline.Volume]
    load_notes: list[str]
    keras_choice: tuple[str, str]  # (backend, reason)
    t_start: float = field(default_factory=time.perf_counter)  # perf_counter() at the start (s)


def source_sentence() -> str:
    """The source's reported figures (from :mod:`fetal_lib.anchors`)."""
    src = {k: anchors.get(f"fetal_mri_ga.source.{k}").text() for k in ("mae_days", "r2", "scans", "weeks")}
    return (f"The source reports MAE about {src['mae_days']} and R2 about {src['r2']} on {src['scans']} of "
            f"{src['weeks']} {{cite}}`fetal_mri_ga_source`.")


def network_sentence(arch_options: Mapping[str, Any] | None, vgg16_weights: str | None) -> str:
    """The network's widths (named a reduced-width variant where they are not VGG16's) and its initial weights."""
    widths = (arch_options or {}).get("widths")
    return (f"Network: `vgg_attention` with block widths {list(widths) if widths else 'of VGG16'}"
            + (" (**a reduced-width variant of VGG16**, with batch normalisation)" if widths and list(widths) != VGG16_WIDTHS else "")
            + ". Weights: " + (f"ImageNet from `{shown(vgg16_weights)}`." if vgg16_weights else
                               "random initialisation (no ImageNet weights file given: nothing can be downloaded here)."))


def start(params: Mapping[str, Any], show: bool = True) -> ChapterStart:
    """The set-up of chapter 4 from its parameters cell (``globals()``: ``profile``, ``data_dir``,
    ``data_source``, ``results_dir``, ``seed`` and every knob of :data:`SPEC`, None for the profile's)."""
    keras_choice = keras_backend.apply_choice()  # KERAS_BACKEND, else auto: before Keras is imported
    from IPython.display import Markdown, display

    from fetal_lib.training.keras import configure as configure_keras  # looked up at call time: a test replaces it

    t_start = time.perf_counter()
    profile, data_dir, seed = str(params["profile"]), params["data_dir"], int(params["seed"])
    configure_keras(threads=2, seed=seed)
    settings = pipeline.profile_settings(profile, {name: params[name] for name in SPEC.knob_names()})
    precision = pipeline.precision_choice(settings)
    prep = pipeline.preprocess_config(settings)
    if str(settings["volumes_file"] or "").strip():  # prepared elsewhere: no SimpleITK needed here
        source, volumes, notes = volume_file.load(settings["volumes_file"], prep)
    else:
        source, volumes, notes = pipeline.load_volumes(settings["dataset"], data_dir, params["data_source"], prep)
    run = ChapterRun(SPEC, profile, data_dir, params["results_dir"], seed, data_status([source]), parameters=settings,
                     compute={"precision": precision.to_dict(), "keras": {**keras_backend.describe(), "choice": keras_choice[1]}})
    if show:
        run.banner()
        display(Markdown(f"Keras runs on **{keras_backend.name()}** ({keras_backend.device()}): {keras_choice[1]}."))
        display(Markdown(source_sentence()))
        display(Markdown(network_sentence(settings["arch_options"], settings["vgg16_weights"])))
    return ChapterStart(run, settings, profile, seed, precision, prep, source, volumes, notes, keras_choice, t_start)

