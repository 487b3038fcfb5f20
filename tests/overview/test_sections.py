"""Chapter 0's per-dataset sections and split design, on the phantoms, checked against the loaders' records."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fetal_lib.overview import anomalies, atlases, brain_age, hc18, planes, split_design, status  # noqa: E402


def _close(fig) -> int:
    n = len([a for a in fig.axes if a.images])
    plt.close(fig)
    return n


def test_hc18_counts_reference_check_and_metrics(phantom_root):
    hc = hc18.load(phantom_root("hc18"))
    counts = hc.counts().set_index("split")
    assert counts.loc["train", "images"] == len(hc.train) and counts.loc["test", "images"] == len(hc.test)
    assert counts.loc["train", "subjects"] == len({r.subject_id for r in hc.train})
    check = hc.reference_check()
    assert len(check.fits) == len(hc.train) and check.hc_ref_mm.tolist() == [r.hc_mm for r in hc.train]
    table = check.table()
    assert table.loc[0, "images"] == len(hc.train)
    assert table.loc[0, "mean |fit - reference| (mm)"] == round(float(np.abs(check.hc_fit_mm - check.hc_ref_mm).mean()), 3)
    m = hc.metrics(check)
    assert m == {"hc18_train_images": len(hc.train), "hc18_train_subjects": len({r.subject_id for r in hc.train}),
                 "hc18_fit_vs_reference_mae_mm": check.mae_mm}
    assert _close(check.samples(2, 0)) == 2
    fig, values = hc.histograms(0)
    plt.close(fig)
    assert set(values["mask value"]) <= {0.0, 1.0} and values["fraction of pixels"].sum() == pytest.approx(1.0)
    assert hc.groups == [r.group for r in hc.train] and hc.labels is None


def test_planes_counts_one_sample_per_plane(phantom_root):
    fp = planes.load(phantom_root("fetal_planes"))
    counts = fp.counts().set_index("plane")
    assert counts.loc["total", "total"] == len(fp.records)
    assert _close(fp.samples(0)) == len({r.plane for r in fp.records})
    assert fp.metrics() == {"fetal_planes_images": len(fp.records),
                            "fetal_planes_patients": len({r.patient_id for r in fp.records})}
    assert fp.labels == [r.plane for r in fp.records]


def test_anomaly_exports_count_groups_crossing_export_splits(phantom_root):
    us = anomalies.load_detection(phantom_root("fetal_brain_anomaly_us"))
    splits_of: dict[str, set] = {}
    for r in us.records:
        splits_of.setdefault(r.group, set()).add(r.export_split)
    crossing = sorted(g for g, s in splits_of.items() if len(s) > 1)
    assert us.crossing == crossing
    leak = us.export_leak()
    assert leak.loc[0, "source groups"] == len(splits_of)
    assert leak.loc[0, "images of those groups"] == sum(r.group in crossing for r in us.records)
    assert us.metrics()["anomaly_us_groups_crossing_export_splits"] == len(crossing)
    assert _close(us.samples(3, 0)) == min(3, len(us.records))
    a16 = anomalies.load_classes(phantom_root("fetal_brain_anomaly_16class"))
    assert a16.metrics()["anomaly_16class_images"] == len(a16.records)
    assert a16.counts().set_index("class").loc["total", "total"] == len(a16.records)


def test_atlases_and_brain_age(phantom_root):
    atl = atlases.load(phantom_root("fetal_brain_atlases"))
    counts = atl.counts()
    assert counts["volumes"].sum() == len(atl.records) == atl.metrics()["atlas_volumes"]
    assert _close(atl.montage()) == len(atl.records)
    ba = brain_age.load(phantom_root("brain_age"))
    counts = ba.counts().set_index("role")
    assert counts["subjects"].sum() == len(ba.records)
    assert counts["with_T1"].sum() == len(ba.with_t1) == ba.metrics()["brain_age_subjects_with_t1"]
    assert ba.by_age().set_index("age band").loc["total", "total"] == len(ba.records)
    assert _close(ba.three_planes(0)) == 6


def test_split_design_is_grouped_and_counts_crossing_groups():
    data = {"a": SimpleNamespace(groups=["g1", "g1", "g2", "g3", "g4", "g5", "g6", "g7"], labels=None),
            "b": SimpleNamespace(groups=[f"p{i // 2}" for i in range(20)], labels=["x", "y"] * 10)}
    table, crossing = split_design.table(data, seed=0)
    assert crossing == 0 and set(table["dataset"]) == {"a", "b"}
    assert table.groupby("dataset")["samples"].sum().to_dict() == {"a": 8, "b": 20}
    assert table.loc[table["dataset"] == "a", "samples per class"].tolist() == [""] * 3


def test_status_metrics_and_problems():
    sources = {"hc18": SimpleNamespace(name="hc18", root="/d/hc18", is_phantom=False, status="partial"),
               "brain_age": SimpleNamespace(name="brain_age", root="/p", is_phantom=True, status="phantom")}
    ds = SimpleNamespace(describe_status=lambda: "partial (1 of 2 files)", problems=["x.png: bad"])
    report = type("Report", (), {"problems": ["x.png: bad"], "__getitem__": lambda self, name: ds})()
    assert status.metrics(sources, report) == {"n_datasets_real": 1, "n_datasets_phantom": 1, "verify_problems": 1}
    assert status.metrics(sources, None)["verify_problems"] == 0
    assert "`x.png: bad`" in status.problems_markdown(report) and status.problems_markdown(None) is None
    run_status = status.run_status(sources, report)
    assert run_status["hc18"]["status"] == "partial (1 of 2 files)" and run_status["hc18"]["problems"] == 1
    assert run_status["brain_age"]["status"] == "phantom" and "problems" not in run_status["brain_age"]
    table = status.table(sources, None).set_index("dataset")
    assert table.loc["brain_age", "data"] == "PHANTOM" and table["licence"].str.len().gt(0).all()
