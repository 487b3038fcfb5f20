"""Published figures the chapters compare against: one table, each row with its source.

Every number a chapter or book page quotes from a paper or a source project comes from here
(rendered with :meth:`Anchor.text`), never typed into prose; everything else is computed by the
run. ``bib`` is the key in ``book/references.bib`` (a test checks that it exists); ``note`` says
what the figure does and does not measure, and flags a figure whose primary table we could not
check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Anchor:
    """One published figure: ``value`` (+- ``sd``) in ``unit``, on ``data``, from ``bib``."""

    key: str
    chapter: str  # chapter id that quotes it
    claim: str  # what was measured, by whom
    value: float
    unit: str  # "mm", "years", "" (a fraction), "images" ...
    bib: str  # key in book/references.bib
    data: str  # on which data and split
    sd: float | None = None
    digits: int = 2
    note: str = ""
    high: float | None = None  # upper end of a range ("21-38 weeks")

    def text(self, digits: int | None = None) -> str:
        """``"1.77 +- 1.69 mm"``, ``"0.789"``, ``"335 images"``, ``"21-38 weeks"``."""
        d = self.digits if digits is None else digits
        out = f"{self.value:,.{d}f}" if d == 0 else f"{self.value:.{d}f}"
        if self.high is not None:
            out += f"-{self.high:.{d}f}"
        if self.sd is not None:
            out += f" +- {self.sd:.{d}f}"
        return f"{out} {self.unit}".strip()

    def to_dict(self) -> dict:
        return asdict(self)


_ROWS = (
    # --- chapter 0: the datasets' own descriptions ------------------------------------------------
    Anchor("data.planes.images", "data", "FETAL_PLANES_DB images", 12400, "images", "burgosartizzu2020planes",
           "the full dataset", digits=0),
    Anchor("data.planes.patients", "data", "FETAL_PLANES_DB patients", 1792, "patients", "burgosartizzu2020planes",
           "the full dataset", digits=0),
    Anchor("data.planes.best_cnn_top1", "data", "Best CNN of the dataset paper, top-1 accuracy on its six planes", 93.6, "%",
           "burgosartizzu2020planes", "its patient-level test split", digits=1,
           note="as the chapter-3 brief gives it; not yet checked against the paper's table"),
    Anchor("data.atlas.gholipour2017.weeks", "data", "CRL fetal brain atlas, gestational weeks", 21, "weeks",
           "gholipour2017atlas", "one template per week", digits=0, high=38),
    Anchor("data.atlas.wu2021.weeks", "data", "Chinese-population fetal brain atlas, gestational weeks", 22, "weeks",
           "wu2021chineseatlas", "one template per week", digits=0, high=35),
    # --- chapter 1: HC18 ------------------------------------------------------------------------
    Anchor("hc18.test_set_images", "hc18", "HC18 challenge test set size (annotations hidden)", 335, "images",
           "vandenheuvel2018hc18", "HC18 test set", digits=0),
    Anchor("hc18.zeng2021.hc_abs_diff", "hc18", "Deeply supervised attention-gated V-Net, HC absolute difference",
           1.77, "mm", "zeng2021dagvnet", "HC18 test set", sd=1.69,
           note="best published figure on the HC18 test set known to the brief of chapter 1"),
    Anchor("hc18.zeng2021.dice", "hc18", "Deeply supervised attention-gated V-Net, Dice", 0.9793, "", "zeng2021dagvnet",
           "HC18 test set", digits=4),
    Anchor("hc18.plain_unet.hc_abs_diff", "hc18", "Plain U-Net, HC absolute difference", 3.97, "mm",
           "zeng2021dagvnet", "HC18 test set", sd=6.97,
           note="the figure the chapter-1 brief gives for a conventional U-Net on the HC18 test set; Zeng et al. 2021 "
                "compare their network with a conventional U-Net there, but we could not check the primary table offline"),
    # --- chapter 2: the segmentation benchmark's source (its table: test, HC18 + private data) ---
    *(Anchor(f"seg_benchmark.source.{arch}.{metric}", "seg_benchmark", f"Source benchmark, {name}, {label}", value, unit,
             "fetal_biometry_xai_source", "image-level split of HC18 plus a private clinical set of 300 scans",
             digits=digits)
      for arch, name, values in (
          ("medsegdiff_v2", "MedSegDiff-V2", (0.9852, 0.9726, 0.9864, 0.961, 70)),
          ("ducknet", "DUCK-Net", (0.9682, 0.9395, 0.9699, 0.932, 175)),
          ("attention_unet", "Attention U-Net", (0.9671, 0.9365, 0.9622, 0.920, 41)),
          ("unext", "UNeXt", (0.9615, 0.9251, 0.9630, 0.918, 40)),
          ("transunet", "TransUNet", (0.9556, 0.9128, 0.9579, 0.901, 33)),
      )
      for (metric, label, unit, digits), value in zip(
          (("dice", "Dice", "", 4), ("iou", "IoU", "", 4), ("recall", "recall", "", 4), ("map", "mAP (undefined in the source)", "", 3),
           ("training_min", "training time", "min", 0)), values)),
    Anchor("seg_benchmark.source.private_scans", "seg_benchmark", "Source benchmark, private clinical scans added to HC18", 300,
           "scans", "fetal_biometry_xai_source", "not public", digits=0),
    Anchor("seg_benchmark.source.medsegdiff_v2.text_dice", "seg_benchmark", "Source benchmark, MedSegDiff-V2 Dice claimed in its text",
           0.9887, "", "fetal_biometry_xai_source", "as above; its own table gives another figure", digits=4,
           note="the text's figure, which the source's table does not show"),
    Anchor("seg_benchmark.source.medsegdiff_v2.text_iou", "seg_benchmark", "Source benchmark, MedSegDiff-V2 IoU claimed in its text",
           0.9780, "", "fetal_biometry_xai_source", "as above; its own table gives another figure", digits=4,
           note="the text's figure, which the source's table does not show"),
    # --- chapter 4: gestational age from fetal MRI (the source project's own description) ----------
    Anchor("fetal_mri_ga.source.scans", "fetal_mri_ga", "Source GA regression, T2-weighted fetal MRI scans", 261, "scans",
           "fetal_mri_ga_source", "private scans, not public", digits=0),
    Anchor("fetal_mri_ga.source.weeks", "fetal_mri_ga", "Source GA regression, gestational-age range", 19, "weeks",
           "fetal_mri_ga_source", "LMP-dated scans", digits=0, high=39),
    Anchor("fetal_mri_ga.source.mae_days", "fetal_mri_ga", "Source GA regression, MAE", 4.5, "days", "fetal_mri_ga_source",
           "stratified 5-fold CV; no statement that one scan's slices stay in one fold", digits=1,
           note="'about' in the source; the split unit is not stated"),
    Anchor("fetal_mri_ga.source.r2", "fetal_mri_ga", "Source GA regression, R2", 0.95, "", "fetal_mri_ga_source",
           "as above", digits=2, note="'about' in the source"),
    # --- chapter 5: brain age (the Imperial College coursework on Cam-CAN) ------------------------
    Anchor("brain_age.source.val_dice_csf", "brain_age", "Source Res-U-Net validation Dice, CSF", 0.789, "",
           "imperial_mli_brainage", "Cam-CAN teaching set, 5 validation subjects", digits=3),
    Anchor("brain_age.source.val_dice_gm", "brain_age", "Source Res-U-Net validation Dice, GM", 0.882, "",
           "imperial_mli_brainage", "Cam-CAN teaching set, 5 validation subjects", digits=3),
    Anchor("brain_age.source.val_dice_wm", "brain_age", "Source Res-U-Net validation Dice, WM", 0.915, "",
           "imperial_mli_brainage", "Cam-CAN teaching set, 5 validation subjects", digits=3),
    Anchor("brain_age.source.holdout_mae", "brain_age", "Source tissue-volume regression, hold-out MAE", 6.90, "years",
           "imperial_mli_brainage", "Cam-CAN teaching set, 100-subject hold-out split",
           note="one split, three tissue volumes from the source's own segmentations"),
    Anchor("brain_age.source.holdout_r2", "brain_age", "Source tissue-volume regression, hold-out R2", 0.81, "",
           "imperial_mli_brainage", "Cam-CAN teaching set, 100-subject hold-out split"),
)

ANCHORS: dict[str, Anchor] = {a.key: a for a in _ROWS}


def get(key: str) -> Anchor:
    """The anchor ``key`` (KeyError naming the known keys otherwise)."""
    try:
        return ANCHORS[key]
    except KeyError:
        raise KeyError(f"no anchor {key!r}; known: {', '.join(sorted(ANCHORS))}") from None


def for_chapter(chapter: str) -> list[Anchor]:
    """The anchors one chapter quotes, in table order."""
    return [a for a in _ROWS if a.chapter == chapter]


def table(chapter: str | None = None):
    """The anchors (of one chapter, or all) as a DataFrame, with their bib keys."""
    import pandas as pd

    rows = [a for a in _ROWS if chapter is None or a.chapter == chapter]
    return pd.DataFrame([{"claim": a.claim, "figure": a.text(), "data": a.data, "source (bib key)": a.bib, "note": a.note}
                         for a in rows])
