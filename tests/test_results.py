"""ChapterRun: figures, tables, metrics.json with provenance; load_metrics."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fetal_lib.results import ChapterRun, data_status, load_metrics  # noqa: E402

PHANTOM = {"hc18": {"is_phantom": True, "status": "phantom", "root": "/p"}}
REAL = {"hc18": {"is_phantom": False, "status": "partial (752 of 999)", "root": "/d"}}


def _run(tmp_path, status=PHANTOM, chapter="data"):
    return ChapterRun(chapter, "smoke", "", tmp_path / chapter, 7, status, parameters={"n": np.int64(3)})


def test_finish_writes_metrics_with_provenance(tmp_path):
    run = _run(tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    run.figure(fig, "line", show=False)
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    run.table(df, "t", show=False)
    run.finish({"mae_mm": np.float64(1.25), "n": np.int64(4), "bad": float("nan"), "per_class": {"a": 0.5}},
               headline=["mae_mm"])

    doc = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert doc["chapter"] == "data"
    assert doc["metrics"] == {"mae_mm": 1.25, "n": 4, "bad": None, "per_class": {"a": 0.5}}
    assert doc["headline"] == ["mae_mm"]
    assert doc["figures"] == ["line.png"] and doc["tables"] == ["t.csv"]
    prov = doc["provenance"]
    assert prov["profile"] == "smoke" and prov["seed"] == 7 and prov["parameters"] == {"n": 3}
    assert prov["data"] == PHANTOM and prov["on_phantom"] is True
    assert prov["git"]["sha"] == "unknown" or len(prov["git"]["sha"]) == 40
    from fetal_lib.provenance import package_sha256

    assert prov["fetal_lib_sha256"] == package_sha256() and len(prov["fetal_lib_sha256"]) == 64  # the code, where git cannot say
    assert prov["packages"]["numpy"] == np.__version__
    assert prov["wall_time_s"] >= 0 and prov["machine"]["cpu_count"] >= 1
    # the saved files are real: a PNG that reads back, a CSV equal to the frame
    assert plt.imread(tmp_path / "data" / "figures" / "line.png").ndim == 3
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "data" / "tables" / "t.csv"), df)
    assert not list((tmp_path / "data").rglob("*.tmp*")), "temporary files left behind"


def test_default_headline_is_top_level_numbers_and_unknown_headline_fails(tmp_path):
    run = _run(tmp_path)
    run.finish({"a": 1, "b": 2.5, "flag": True, "name": "x", "nested": {"c": 1}})
    doc = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert doc["headline"] == ["a", "b"]
    with pytest.raises(KeyError):
        _run(tmp_path, chapter="other").finish({"a": 1}, headline=["missing"])
    assert not (tmp_path / "other" / "metrics.json").exists()


def test_banner_says_phantom_only_on_phantom(tmp_path):
    phantom = _run(tmp_path).banner_markdown()
    real = _run(tmp_path, REAL, chapter="r").banner_markdown()
    assert ":::{admonition} Run on phantom data\n:class: warning\n" in phantom
    assert ":class: warning" not in real and ":::{admonition} Data used\n:class: note\n" in real
    assert "real data" in real and "752 of 999" in real
    mixed = _run(tmp_path, {**REAL, "brain_age": {"is_phantom": True, "status": "phantom"}}, chapter="m")
    text = mixed.banner_markdown()
    assert "Partly run on phantom data" in text and "`brain_age`: **phantom**" in text and "`hc18`: real data" in text


def test_data_status_from_source_objects():
    class Src:
        def __init__(self, name, is_phantom, status):
            self.name, self.root, self.is_phantom, self.status = name, f"/r/{name}", is_phantom, status

    got = data_status([Src("hc18", False, "complete"), Src("brain_age", True, "phantom")])
    assert got == {
        "hc18": {"is_phantom": False, "status": "complete", "root": "/r/hc18"},
        "brain_age": {"is_phantom": True, "status": "phantom", "root": "/r/brain_age"},
    }


def test_load_metrics_reads_all_and_flags_corrupt(tmp_path):
    _run(tmp_path / "res", chapter="data").finish({"a": 1})
    (tmp_path / "res" / "hc18").mkdir(parents=True)
    (tmp_path / "res" / "hc18" / "metrics.json").write_text("{not json")
    got = load_metrics(tmp_path / "res")
    assert got["data"]["metrics"] == {"a": 1}
    assert "unreadable" in got["hc18"]["error"]
    assert load_metrics(tmp_path / "absent") == {}


def test_warnings_and_precision_show_at_the_top_and_are_recorded(tmp_path):
    choice = {"precision": "float32", "reason": "auto: the CPU has no native bfloat16"}
    run = ChapterRun("hc18", "cpu", "", tmp_path, 0, {"hc18": {"is_phantom": False, "status": "complete"}},
                     compute={"precision": choice})
    top = run.banner_markdown()
    assert "training precision: `float32` (auto: the CPU has no native bfloat16)" in top and "Training cut short" not in top
    run.warn("The wall-time cap ended training after 3 of 16 epochs.")
    top = run.banner_markdown()
    assert ":::{admonition} Training cut short\n:class: warning\n" in top and "3 of 16 epochs" in top
    run.finish({"x": 1.0})
    prov = json.loads((tmp_path / "metrics.json").read_text())["provenance"]
    assert prov["warnings"] == ["The wall-time cap ended training after 3 of 16 epochs."]
    assert prov["compute"]["precision"] == choice
    assert "cpu_model" in prov["machine"] and isinstance(prov["machine"]["cpu_native_bf16"], list)


@pytest.mark.slow
def test_a_warning_raised_mid_chapter_appears_in_the_banner_at_its_top(tmp_path):
    """Executed as the book executes chapters (papermill), ``run.warn`` rewrites the first output."""
    import nbformat
    import papermill

    from fetal_lib.book.execute import KERNEL_NAME, ensure_kernel, kernel_environment

    ensure_kernel()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"from fetal_lib.results import ChapterRun\nrun = ChapterRun('x', 'cpu', '', {str(tmp_path / 'r')!r}, 0)\nrun.banner()"),
        nbformat.v4.new_code_cell("print('training ...')"),
        nbformat.v4.new_code_cell("run.warn('The cap ended training after 2 of 9 epochs.')"),
    ]
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    with kernel_environment():
        papermill.execute_notebook(str(src), str(out), kernel_name=KERNEL_NAME, progress_bar=False)
    cells = nbformat.read(out, as_version=4).cells
    top = "".join(o["data"]["text/markdown"] for o in cells[0].outputs if "data" in o)
    assert "Training cut short" in top and "2 of 9 epochs" in top
