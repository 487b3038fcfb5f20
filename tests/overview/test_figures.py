"""Tables and figures of the data chapter, checked against direct computations."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fetal_lib.overview import figures as overview  # noqa: E402


def test_split_table_counts_groups_and_detects_crossing():
    groups = ["a", "a", "b", "c", "c", "d"]
    labels = ["x", "x", "y", "x", "y", "y"]
    good = {"train": np.array([0, 1, 2]), "test": np.array([3, 4, 5])}
    t = overview.split_table(groups, good, labels)
    assert t["samples"].tolist() == [3, 3] and t["groups"].tolist() == [2, 2]
    assert t["groups also in another part"].tolist() == [0, 0]
    assert t["samples per class"].tolist() == ["x: 2, y: 1", "x: 1, y: 2"]
    leaky = {"train": np.array([0, 2, 3]), "test": np.array([1, 4, 5])}  # a and c on both sides
    assert overview.split_table(groups, leaky)["groups also in another part"].tolist() == [2, 2]


def test_crossing_groups():
    assert overview.crossing_groups(["a", "a", "b", "b"], ["train", "test", "valid", "valid"]) == ["a"]


def test_counts_match_pandas():
    df = pd.DataFrame({"plane": ["b", "a", "b", "b"], "split": ["tr", "te", "tr", "te"]})
    one = overview.counts(df, "plane")
    assert one.set_index("plane")["n"].to_dict() == {"a": 1, "b": 3, "total": 4}
    two = overview.counts(df, "plane", "split").set_index("plane")
    assert two.loc["b", "tr"] == 2 and two.loc["total", "total"] == 4


def test_status_table_uses_verify_for_real_data_only():
    sources = {"hc18": SimpleNamespace(is_phantom=False, status="partial"),
               "brain_age": SimpleNamespace(is_phantom=True, status="phantom")}
    ds = SimpleNamespace(describe_status=lambda: "partial (752 of 999 images)", n_present=752,
                         n_expected=999, problems=["x: bad"])
    report = {"hc18": ds}
    t = overview.status_table(sources, report).set_index("dataset")
    assert t.loc["hc18", "status"] == "partial (752 of 999 images)" and t.loc["hc18", "problems"] == 1
    assert t.loc["brain_age", "data"] == "PHANTOM" and t.loc["brain_age", "status"] == "phantom"


def test_pick_is_deterministic_and_bounded():
    assert overview.pick(10, 4, 0) == overview.pick(10, 4, 0)
    assert len(set(overview.pick(10, 4, 0))) == 4 and overview.pick(3, 10, 0) == [0, 1, 2]


def test_figures_build(tmp_path):
    vol = np.random.default_rng(0).random((6, 8, 10))
    seg = (vol > 0.5).astype(np.uint8)
    fig = overview.three_planes(vol, (1.0, 1.0, 2.0), seg, "t", {0: "bg", 1: "fg"})
    assert len([a for a in fig.axes if a.images]) == 6
    fig = overview.atlas_montage({("A", 21): vol[0], ("B", 22): vol[1]})
    assert len(fig.axes) == 4 and sum(bool(a.images) for a in fig.axes) == 2
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros((20, 30), np.uint8))
    fig = overview.image_grid([path], ["t"], boxes=[[("abnormal", 0.5, 0.5, 0.2, 0.4)]])
    rect = fig.axes[0].patches[0]
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (12.0, 6.0, 6.0, 8.0)


def test_hc18_histograms_count_grey_levels_inside_and_outside_and_the_mask_values(tmp_path):
    image = np.zeros((40, 60), np.uint8)
    image[10:30, 20:40] = 200  # the "head": 400 pixels at 200, the rest 0
    cv2.imwrite(str(tmp_path / "a.png"), image)
    rec = SimpleNamespace(image_path=tmp_path / "a.png")
    mask = (image > 0).astype(np.uint8)
    fig, values = overview.hc18_histograms({"train": [rec], "test": [rec]}, [mask], [rec])
    assert values["mask value"].tolist() == [0.0, 1.0]
    assert np.allclose(values["fraction of pixels"], [2000 / 2400, 400 / 2400])
    inside = fig.axes[1].lines[0].get_ydata()
    outside = fig.axes[1].lines[1].get_ydata()
    assert inside[200] == 1.0 and outside[0] == 1.0  # every head pixel at 200, every other at 0
    assert np.isclose(fig.axes[0].lines[0].get_ydata()[200], 400 / 2400)
