"""The experiment's pieces: subject-level split on real HC18, evaluation and threshold choice."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.hc import pipeline


def test_subject_level_split_on_real_data(real_dataset):
    root = real_dataset("hc18")
    data = pipeline.load_data(str(root.parent), "real", seed=0)
    assert not data.source.is_phantom
    n = len(data.records)
    assert n == 752
    parts = data.parts
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(n))
    subjects = {k: {data.records[i].subject_id for i in v} for k, v in parts.items()}
    assert not (subjects["train"] & subjects["val"] or subjects["train"] & subjects["test"] or subjects["val"] & subjects["test"])
    # NNN_HC and NNN_2HC are one subject
    both = [r.subject_id for r in data.records if r.filename.endswith("_2HC.png")]
    assert both
    assert 0.6 < len(parts["train"]) / n < 0.8
    # same seed, same split
    again = pipeline.load_data(str(root.parent), "real", seed=0)
    for k in parts:
        np.testing.assert_array_equal(parts[k], again.parts[k])


def test_evaluate_and_threshold_on_phantom(phantom_root, intensity_model_path):
    pytest.importorskip("tensorflow")
    from fetal_lib.data import hc18
    from fetal_lib.hc.measure import HCModel

    model = HCModel.load(intensity_model_path)
    records = hc18.load(phantom_root("hc18"), "train")[:6]
    df = pipeline.evaluate(model, records)
    assert len(df) == 6 and df["found"].all()
    # the intensity model segments the phantom's bright skull ring: its ellipse fit lies near the
    # reference HC; Dice is low where the ring is open (no hole to fill), so only its range is checked
    assert (df["hc_abs_diff_mm"] / df["hc_ref_mm"]).max() < 0.06
    assert df["dice"].between(0, 1).all() and (df["hd95_mm"] >= 0).all()
    summary = pipeline.summarize(df)
    assert summary["n_images"] == 6 and summary["hc_abs_diff_ci95_mm"][0] <= summary["hc_abs_diff_mean_mm"] <= summary["hc_abs_diff_ci95_mm"][1]
    best, table = pipeline.choose_threshold(model, records, [0.3, 0.5, 0.99999])
    assert list(table["threshold"]) == [0.3, 0.5, 0.99999]
    assert best == table.loc[table["mean_abs_diff_mm"].idxmin(), "threshold"]


def test_profile_settings_have_every_knob():
    from fetal_lib.config.profiles import PROFILES
    from fetal_lib.book.chapters import spec_of

    for profile in PROFILES:
        s = pipeline.profile_settings(profile)
        assert list(s) == spec_of("hc18").knob_names() and all(v is not None for v in s.values())
        cfg = pipeline.train_config(s)
        assert cfg.input_shape[0] % 2**cfg.depth == 0 and cfg.input_shape[1] % 2**cfg.depth == 0
    assert pipeline.parse_grid("0.3, 0.5") == [0.3, 0.5]


def test_parse_overrides_types_and_errors():
    got = pipeline.parse_overrides(["augment_vflip=false", "epochs=12", "learning_rate=2e-3", "loss_weight=mm_per_pixel", "tta=hflip"])
    assert got == {"augment_vflip": False, "epochs": 12, "learning_rate": 0.002, "loss_weight": "mm_per_pixel", "tta": "hflip"}
    assert isinstance(got["epochs"], int) and isinstance(got["learning_rate"], float)
    assert pipeline.parse_overrides(["augment=YES"]) == {"augment": True}
    assert pipeline.parse_overrides(["precision=mixed_bfloat16", "jit_compile=no"]) == {"precision": "mixed_bfloat16", "jit_compile": False}
    assert pipeline.train_config(pipeline.profile_settings("smoke", {"precision": "mixed_bfloat16"})).precision == "mixed_bfloat16"
    for bad, problem in [("epochs", "KEY=VALUE"), ("colour=red", "unknown hc18 setting"), ("augment=maybe", "true or false"),
                         ("epochs=many", "a number"), ("loss_weight=area", "one of none, mm_per_pixel"),
                         ("precision=float16", "one of auto, float32, mixed_bfloat16")]:
        with pytest.raises(ValueError, match=problem):
            pipeline.parse_overrides([bad])


def test_signed_by_range_counts_and_means():
    import pandas as pd

    df = pd.DataFrame({"found": [True, True, True, False], "hc_ref_mm": [80.0, 200.0, 300.0, 310.0],
                       "hc_diff_mm": [-1.0, 2.0, -3.0, np.nan]})
    df["hc_abs_diff_mm"] = df["hc_diff_mm"].abs()
    got = pipeline.signed_by_range(df)["by_hc_range"]
    assert [v["n"] for v in got.values()] == [1, 1, 1]  # the record with no head is left out
    assert [v["hc_diff_mean_mm"] for v in got.values()] == [-1.0, 2.0, -3.0]
    assert [v["hc_abs_diff_mean_mm"] for v in got.values()] == [1.0, 2.0, 3.0]


def test_error_table_rows_per_split_against_pandas():
    import pandas as pd

    rng = np.random.default_rng(0)

    def fake(n):
        ref = rng.uniform(60, 330, n)
        diff = rng.normal(0, 2, n)
        df = pd.DataFrame({"found": np.arange(n) % 7 != 0, "hc_ref_mm": ref, "hc_diff_mm": diff, "dice": rng.uniform(0.9, 1, n),
                           "subject_id": [f"{i // 2:03d}" for i in range(n)], "flagged": np.arange(n) % 5 == 1})
        df.loc[~df["found"], "hc_diff_mm"] = np.nan
        df["hc_abs_diff_mm"] = df["hc_diff_mm"].abs()
        return df

    splits = {"train": fake(40), "test": fake(15)}
    table = pipeline.error_table(splits)
    assert list(table["split"]) == ["train", "test"]
    for _, row in table.iterrows():  # the plausibility checks: counted, and the error of each kind of fit
        df = splits[row["split"]]
        found = df[df["found"]]
        assert row["flagged"] == int(df["flagged"].sum())
        assert row["|diff| mean, flagged (mm)"] == pytest.approx(found[found["flagged"]]["hc_abs_diff_mm"].mean())
        assert row["|diff| mean, not flagged (mm)"] == pytest.approx(found[~found["flagged"]]["hc_abs_diff_mm"].mean())
        low, high = (float(v) for v in row["signed 95% CI (mm)"].split(" to "))
        assert low < found["hc_diff_mm"].mean() < high and high - low < 4 * 2 / np.sqrt(len(found)) * 1.96
    assert "flagged" not in pipeline.error_table({"x": splits["test"].drop(columns=["flagged"])}).columns
    for _, row in table.iterrows():
        df = splits[row["split"]]
        found = df[df["found"]]
        assert row["images"] == len(df) and row["no head found"] == int((~df["found"]).sum())
        assert row["HC |diff| mean (mm)"] == pytest.approx(found["hc_abs_diff_mm"].mean())
        assert row["HC |diff| median (mm)"] == pytest.approx(np.median(found["hc_abs_diff_mm"]))
        assert row["signed mean (mm)"] == pytest.approx(found["hc_diff_mm"].mean())
        big = found[found["hc_ref_mm"] >= 250]
        assert row["|diff| mean, >= 250 mm (mm)"] == pytest.approx(big["hc_abs_diff_mm"].mean())
        assert sum(int(n) for n in row["images per HC range"].split("/")) == len(found)
    assert not table.drop(columns=["images per HC range"]).isna().any().any()


def test_fit_verdict_compares_training_with_test_only() -> None:
    from fetal_lib.hc.pipeline import fit_verdict

    assert "overfits" in fit_verdict(1.0, 2.6)
    assert "does not overfit" in fit_verdict(1.84, 2.07)
    assert "easier" in fit_verdict(3.0, 2.0)
    assert "not judged" in fit_verdict(float("nan"), 2.0)


class _StagedStub:
    """A cascade stand-in: its head map is the reference mask (read from each record in turn), its first stage's
    head ``first_scale`` times the final one, so :func:`pipeline.evaluate` must flag the stages apart from 3 %."""

    threshold = 0.5

    def __init__(self, probs, first_scale: float):
        self.probs, self.first_scale, self.calls = list(probs), first_scale, 0

    def fit(self, prob, threshold=None):
        from fetal_lib.hc import postprocess

        return postprocess.fit_head(prob, 0.5)

    def first_fit(self, prob):
        from dataclasses import replace

        from fetal_lib.metrics.biometry import Ellipse

        head = self.fit(prob)
        e = head.ellipse
        return replace(head, ellipse=Ellipse(e.cx, e.cy, e.a * self.first_scale, e.b * self.first_scale, e.angle_rad))

    def probability_and_first(self, image):
        prob = self.probs[self.calls]
        self.calls += 1
        return prob, self.first_fit(prob)

    def calibrate(self, ellipse, pixel_size_mm):
        return ellipse


def test_evaluate_flags_a_cascade_whose_stages_disagree_as_fetal_hc_measure_does(phantom_root):
    from fetal_lib.data import hc18
    from fetal_lib.data.hc18 import load_mask

    records = hc18.load(phantom_root("hc18"), "train")[:3]
    probs = [load_mask(r).astype(np.float32) for r in records]
    # computed by evaluate (no maps given): a first stage 10 % smaller is flagged on every image
    apart = pipeline.evaluate(_StagedStub(probs, 0.9), records)
    assert apart["found"].all() and apart["flagged"].all()
    assert apart["warnings"].str.contains("the two stages disagree").all()
    # maps given with the first stage's fits (the chapter's validation and test tables): the same flags
    stub = _StagedStub(probs, 0.9)
    given = pipeline.evaluate(stub, records, probs, first_fits=[stub.first_fit(p) for p in probs])
    assert given["warnings"].tolist() == apart["warnings"].tolist()
    # stages 1 % apart agree; no first-stage fits given: nothing to compare
    close = pipeline.evaluate(_StagedStub(probs, 0.99), records)
    assert not close["warnings"].str.contains("disagree").any()
    assert not pipeline.evaluate(stub, records, probs)["warnings"].str.contains("disagree").any()


def test_the_hc_at_each_threshold_is_the_raw_fit_there_and_the_threshold_choice_scores_a_miss_as_its_reference(phantom_root):
    from fetal_lib.data import hc18
    from fetal_lib.data.hc18 import load_mask
    from fetal_lib.hc import postprocess
    from fetal_lib.metrics.biometry import head_circumference_mm

    records = hc18.load(phantom_root("hc18"), "train")[:3]
    # a soft head: the filled reference blurred, so a higher threshold fits a smaller ellipse; the third map is empty
    import cv2

    probs = [cv2.GaussianBlur(load_mask(r).astype(np.float32), (0, 0), 6.0) for r in records[:2]] + [np.zeros(load_mask(records[2]).shape, np.float32)]
    stub = _StagedStub(probs, 1.0)
    stub.fit = lambda prob, threshold=None: postprocess.fit_head(prob, threshold)
    got = pipeline.hc_at_thresholds(stub, records, [0.3, 0.7], probs)
    for i, (rec, prob) in enumerate(zip(records[:2], probs)):
        for t in (0.3, 0.7):
            assert got[t][i] == pytest.approx(head_circumference_mm(postprocess.fit_head(prob, t).ellipse, rec.pixel_size_mm))
        assert got[0.3][i] > got[0.7][i]
    assert np.isnan(got[0.3][2]) and np.isnan(got[0.7][2])
    best, table = pipeline.choose_threshold(stub, records, [0.3, 0.7], probs)
    ref = np.array([r.hc_mm for r in records])
    for row, t in zip(table.itertuples(), (0.3, 0.7)):  # a miss counts as an error of its whole reference HC
        assert row.no_head_found == 1
        assert row.mean_abs_diff_mm == pytest.approx(np.mean(np.r_[np.abs(got[t][:2] - ref[:2]), ref[2]]))
    assert best == table.loc[table["mean_abs_diff_mm"].idxmin(), "threshold"]
    # the bias-targeting criterion: the smallest |mean signed difference| over the heads found
    signed = {t: float(np.mean(got[t][:2] - ref[:2])) for t in (0.3, 0.7)}
    best_signed, table = pipeline.choose_threshold(stub, records, [0.3, 0.7], probs, "signed")
    assert best_signed == min(signed, key=lambda t: abs(signed[t]))
    assert table["mean_diff_mm"].tolist() == pytest.approx([signed[0.3], signed[0.7]])
    # the final rule: the deployed model's threshold set again on validation, its results evaluated there
    stub.threshold, stub.calls = 0.5, 0  # the model's own threshold where none is given, as the real models
    stub.fit = lambda prob, threshold=None: postprocess.fit_head(prob, stub.threshold if threshold is None else threshold)
    rule = {"final_threshold_step": 0.2, "final_threshold_criterion": "signed"}
    assert pipeline.final_threshold_rule(rule) == ((0.3, 0.5, 0.7), "signed")
    table, val = pipeline.apply_final_threshold(stub, records[:2], rule)  # (the empty map: the first-stage fit of a miss raises)
    signed[0.5] = float(np.mean(pipeline.hc_at_thresholds(stub, records[:2], [0.5], probs[:2])[0.5] - ref[:2]))
    assert stub.threshold == min((0.3, 0.5, 0.7), key=lambda t: abs(signed[t])) and len(table) == 3
    assert val["hc_raw_mm"].iloc[0] == pytest.approx(pipeline.hc_at_thresholds(stub, records[:1], [stub.threshold], probs[:1])[stub.threshold][0])
    assert pipeline.apply_final_threshold(stub, records, {"final_threshold_step": 0}, "as they were") == (None, "as they were")


def test_threshold_ranges_and_criteria():
    assert pipeline.threshold_range(0.1) == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    assert len(pipeline.threshold_range(0.025)) == 21 and pipeline.threshold_range(0.025)[1] == 0.325
    ref = np.array([100.0, 200.0, 300.0])
    assert pipeline.threshold_score([101.0, 197.0, np.nan], ref, "abs") == pytest.approx((1 + 3 + 300) / 3)
    assert pipeline.threshold_score([101.0, 197.0, np.nan], ref, "signed") == pytest.approx(1.0)
    assert pipeline.threshold_score([np.nan] * 3, ref, "signed") == np.inf  # never chosen
    with pytest.raises(ValueError, match="criterion"):
        pipeline.final_threshold_rule({"final_threshold_step": 0.05, "final_threshold_criterion": "median"})


def test_the_audit_arms_share_of_training_subjects_keeps_whole_subjects_and_leaves_validation_and_test(real_dataset):
    data = pipeline.load_data(str(real_dataset("hc18").parent), "real", seed=0)
    half = data.with_training_subjects(0.5, seed=0)
    subjects = {part: {r.subject_id for r in data.part(part)} for part in ("train", "val", "test")}
    kept = {r.subject_id for r in half.part("train")}
    assert kept < subjects["train"] and len(kept) == round(0.5 * len(subjects["train"]))
    # every image of a kept subject (NNN_HC and NNN_2HC together), and none of the others
    assert sorted(half.parts["train"].tolist()) == [i for i in sorted(data.parts["train"]) if data.records[i].subject_id in kept]
    assert any(r.filename.endswith("_2HC.png") for r in half.part("train"))
    for part in ("val", "test"):
        np.testing.assert_array_equal(half.parts[part], data.parts[part])
    assert len(data.parts["train"]) == 533  # the original untouched
    np.testing.assert_array_equal(data.with_training_subjects(0.5, seed=0).parts["train"], half.parts["train"])  # seeded
    assert set(data.with_training_subjects(0.5, seed=1).parts["train"].tolist()) != set(half.parts["train"].tolist())
    assert data.with_training_subjects(1.0) is data
    assert len({r.subject_id for r in data.with_training_subjects(1e-6).part("train")}) == 1  # at least one subject
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"share of training subjects must be in \(0, 1\]"):
            data.with_training_subjects(bad)
