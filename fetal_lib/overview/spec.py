"""Chapter 0's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

SPEC = ChapterSpec(
    id="data",
    number=0,
    title="The data",
    knobs=(
        Knob("n_samples", int, "sample images shown per dataset", ""),
    ),
)
