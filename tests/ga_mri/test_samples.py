"""Samples of three slices: matched triples first, distinct random ones after, one volume's samples together."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.ga_mri import samples
from fetal_lib.networks.keras.vgg_attention import PLANES


def _volume(value: float, n: int = 3, size: int = 4) -> dict[str, np.ndarray]:
    # slice k of plane j holds value + 10 j + k: the sample's pixels say which slices it took
    return {p: np.stack([np.full((size, size), value + 10 * j + k, np.float32) for k in range(n)]) for j, p in enumerate(PLANES)}


def test_triples_start_matched_and_never_repeat() -> None:
    t = samples.triples(3, 12, np.random.default_rng(0))
    assert t.shape == (12, 3)
    assert [tuple(r) for r in t[:3]] == [(0, 0, 0), (1, 1, 1), (2, 2, 2)]
    assert len({tuple(r) for r in t}) == 12
    assert t.min() == 0 and t.max() == 2
    with pytest.raises(ValueError, match="samples_per_volume"):
        samples.triples(3, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="samples_per_volume"):
        samples.triples(3, 28, np.random.default_rng(0))


def test_build_keeps_each_sample_with_its_volume_and_age() -> None:
    s = samples.build([_volume(100), _volume(200)], [150.0, 250.0], ["a/x", "b/y"], ["a", "b"], samples_per_volume=5, seed=1)
    assert len(s) == 10
    assert s.planes["axial"].shape == (10, 4, 4, 1)
    assert list(s.group) == ["a/x"] * 5 + ["b/y"] * 5
    assert list(s.ga_days) == [150.0] * 5 + [250.0] * 5
    for i in range(len(s)):
        base = 100 if s.group[i] == "a/x" else 200
        for j, p in enumerate(PLANES):
            assert s.planes[p][i, 0, 0, 0] == base + 10 * j + s.offsets[i, j]
    sub = s.subset([0, 9])
    assert list(sub.group) == ["a/x", "b/y"] and sub.inputs()[0].shape == (2, 4, 4, 1)


def test_build_refuses_mismatched_volumes() -> None:
    with pytest.raises(ValueError, match="one GA"):
        samples.build([_volume(1)], [1.0, 2.0], ["a"], ["a"], 3)
    with pytest.raises(ValueError, match="expected"):
        samples.build([_volume(1), _volume(2, n=4)], [1.0, 2.0], ["a", "b"], ["a", "a"], 3)
