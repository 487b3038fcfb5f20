"""The tables and sentences of chapter 5, built from this run's numbers and the anchors table."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib import anchors
from fetal_lib.metrics.regression import mae, r2


def source_sentence() -> str:
    """The source project's reported figures (from :mod:`fetal_lib.anchors`)."""
    d = {t: anchors.get(f"brain_age.source.val_dice_{t}") for t in ("csf", "gm", "wm")}
    holdout, holdout_r2 = anchors.get("brain_age.source.holdout_mae"), anchors.get("brain_age.source.holdout_r2")
    return (f"The source reports a validation Dice of CSF {d['csf'].text()}, GM {d['gm'].text()}, WM {d['wm'].text()} and a "
            f"hold-out MAE of {holdout.text()} (R2 {holdout_r2.text()}) on {holdout.data} ({holdout.bib}).")


def data_sentence(subjects: Sequence[Any]) -> str:
    """What the data root holds, counted: subjects per role, and which have images."""
    roles = Counter(s.role for s in subjects)
    with_images = Counter(s.role for s in subjects if s.image_path is not None)
    return (f"**What is here.** {roles.get('seg_train', 0)} segmentation-training and {roles.get('seg_val', 0)} validation "
            f"subjects ({with_images.get('seg_train', 0) + with_images.get('seg_val', 0)} with images, brain masks and reference "
            f"segmentations); {roles.get('regression', 0)} regression subjects with reference segmentations and "
            f"{'no images' if not with_images.get('regression') else str(with_images['regression']) + ' images'}.")


def domain_shift(fits: Mapping[str, Any], ages: np.ndarray, features_by_source: Mapping[str, Mapping[str, np.ndarray]],
                 deploy_model: str):
    """Every fitted regressor scored on the image subjects' features from each source
    (``{"reference": {...}, "predicted_hard": {...}, "predicted_soft": {...}}``, each with
    ``volumes`` and ``maps``): MAE, R2 and mean gap (years) per source, one row per model."""
    import pandas as pd

    rows = []
    for name, fitted in fits.items():
        row: dict[str, Any] = {"model": name, "deployed": name == deploy_model, "n": len(ages)}
        for label, f in features_by_source.items():
            p = fitted.predict(f["volumes"], f["maps"])
            row.update({f"mae_{label}_segs_years": mae(ages, p), f"r2_{label}_segs": r2(ages, p),
                        f"mean_gap_{label}_segs_years": float(np.mean(p - ages))})
        rows.append(row)
    return pd.DataFrame(rows)


def volume_bias(features_by_source: Mapping[str, Mapping[str, np.ndarray]]):
    """Mean tissue-volume bias (mL) of each predicted source against the reference segmentations."""
    import pandas as pd

    ref = features_by_source["reference"]["volumes"]
    return pd.DataFrame({label: (f["volumes"] - ref).mean(0) for label, f in features_by_source.items() if label != "reference"},
                        index=["csf_ml", "gm_ml", "wm_ml"])


def deployed_path_table(deployed, subject_ids: Sequence[str], ages: np.ndarray,
                        features_by_source: Mapping[str, Mapping[str, np.ndarray]]):
    """One row per subject: age and the deployed regressor's prediction from each feature source."""
    import pandas as pd

    preds = {label: deployed.predict(f["volumes"], f["maps"]) for label, f in features_by_source.items()}
    return pd.DataFrame([{"subject_id": sid, "age_years": float(a),
                          **{f"predicted_{label.replace(' ', '_')}_years": float(p[j]) for label, p in preds.items()}}
                         for j, (sid, a) in enumerate(zip(subject_ids, ages))])


def deployed_path_variants(deployed, features_by_source: Mapping[str, Mapping[str, np.ndarray]], ages: np.ndarray,
                           deploy_features: str, feature_correction: str, n_boot: int = 1000, seed: int = 0,
                           correction_folds: int = 5, training_set: str = "reference",
                           mixed: Mapping[str, np.ndarray] | None = None):
    """The regressor trained on reference segmentations (``deployed``) on the image subjects'
    features, one row per path: reference segmentations (an upper bound no user reaches),
    predicted soft and hard features as they are, and each corrected by tissue mixing (fitted
    without the subject's fold: nested); then, from ``mixed`` ({"soft"|"hard": predicted ages}, see
    :func:`fetal_lib.brain_age.mixed_training.nested_predictions`), the regressor trained with the
    other image subjects added. MAE with a bootstrap 95 % CI, R2 and mean gap (years); ``deployed``
    marks the profile's path (features, correction and ``training_set``). Returns the table and each
    path's predicted ages."""
    import pandas as pd

    from fetal_lib.brain_age.correction import nested_predictions
    from fetal_lib.metrics.uncertainty import bootstrap_ci

    ref = features_by_source["reference"]
    paths: list[tuple[str, str, str, str, np.ndarray]] = [
        ("reference segmentations (upper bound)", "reference", "none", "reference", deployed.predict(ref["volumes"], ref["maps"]))]
    for kind in ("soft", "hard"):
        f = features_by_source[f"predicted_{kind}"]
        paths.append((f"predicted {kind}, as segmented", kind, "none", "reference", deployed.predict(f["volumes"], f["maps"])))
        paths.append((f"predicted {kind} + tissue mixing (nested)", kind, "tissue_mixing", "reference",
                      nested_predictions(deployed, f, ref, ages, correction_folds, seed)))
    for kind, pred in (mixed or {}).items():
        paths.append((f"predicted {kind}, regressor also trained on the other image subjects (nested)", kind, "none",
                      "reference+image_subjects", np.asarray(pred, float)))
    rows = []
    for label, feats, corr, trained_on, pred in paths:
        ci = bootstrap_ci(lambda t, p: mae(t, p), ages, pred, n_boot=n_boot, seed=seed)
        rows.append({"path": label, "features": feats, "correction": corr, "regressor trained on": trained_on, "n": len(ages),
                     "mae_years": ci.estimate, "mae_ci_low": ci.low, "mae_ci_high": ci.high, "r2": r2(ages, pred),
                     "mean_gap_years": float(np.mean(pred - ages)),
                     "deployed": feats == deploy_features and corr == feature_correction and trained_on == training_set})
    return pd.DataFrame(rows), {label: pred for label, _f, _c, _t, pred in paths}
