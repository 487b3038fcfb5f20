"""GPU check of chapter 5's torch part without SimpleITK (the GPU machine has none).

    python tests/gpu/brain_age_segmenter.py prepare .gpu/brain_age.npz --data-dir ../shared/data   # here: preprocess
    python tests/gpu/brain_age_segmenter.py train .gpu/brain_age.npz --profile full --epochs 2      # there: train, predict

``prepare`` preprocesses a few segmentation subjects with the chapter's SimpleITK code and saves the
arrays; ``train`` trains the profile's Res-U-Net on them through the chapter's own functions
(:func:`fetal_lib.brain_age.segmentation.train`, validation, mirror-averaged prediction) on the
device ``auto`` resolves to, and prints seconds per epoch and the Dice. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def prepare(out: str, data_dir: str, n_train: int, n_val: int) -> None:
    from fetal_lib.brain_age import dataset, pipeline
    from fetal_lib.data.sources import resolve

    subjects = dataset.load(resolve("brain_age", data_dir, "real").root)
    chosen = ([s for s in subjects if s.role == "seg_train" and s.image_path][:n_train]
              + [s for s in subjects if s.role == "seg_val" and s.image_path][:n_val])
    data = pipeline.prepare_images(chosen)
    np.savez_compressed(out, images=data.images, images_nn=data.images_nn, masks=data.masks, segs=data.segs,
                        spacing=np.asarray(data.spacing_mm), n_train=n_train)
    print(f"{len(chosen)} subjects preprocessed to {out}")


def train(path: str, profile: str, epochs: int) -> None:
    from fetal_lib.config.profiles import chapter_knobs
    from fetal_lib.book.chapters import spec_of
    from fetal_lib.brain_age import pipeline, segmentation
    from fetal_lib.brain_age.fold_ensemble import mean_probability_ensemble

    arrays = np.load(path)
    n = int(arrays["n_train"])
    settings = {**chapter_knobs(spec_of("brain_age"), profile), "seg_epochs": epochs, "seg_val_every": 1}
    cfg = pipeline.seg_train_config(settings)
    images = np.stack([arrays["images"], arrays["images_nn"]], axis=1) if cfg.nn_channel else arrays["images"]
    masks, segs = arrays["masks"], arrays["segs"]
    print(f"device {pipeline.device_choice(cfg.device)}; precision {cfg.precision} "
          f"({pipeline.precision_choice(settings['seg_precision'], device=cfg.device).reason})")
    t0 = time.perf_counter()
    result = segmentation.train(images[:n], segs[:n], cfg, masks=masks[:n], val=(images[n:], masks[n:], segs[n:]), log=print)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    labels = segmentation.predict(result.model, images[n:], masks[n:], tta=True)
    dice = segmentation.mean_dice(labels, segs[n:])
    predict_s = (time.perf_counter() - t1) / max(1, len(labels))
    # the deployed path: the fold networks averaged (here the one network twice), saved and loaded back onto the
    # device `auto` resolves to, then predicting as the chapter and `fetal brain-age predict` do
    ensemble = mean_probability_ensemble([result.model, result.model])
    with tempfile.TemporaryDirectory() as tmp:
        segmentation.save(ensemble, tmp)
        loaded = segmentation.load(tmp, device="auto")
    t2 = time.perf_counter()
    ensemble_labels = segmentation.predict(loaded, images[n:], masks[n:], tta=True)
    ensemble_s = (time.perf_counter() - t2) / max(1, len(ensemble_labels))
    same = float(np.mean(ensemble_labels == labels))
    print(json.dumps({"trained_on": result.device, "epochs": len(result.history), "train_subjects": n,
                      "seconds_per_epoch": [round(h["seconds"], 2) for h in result.history], "training_s": round(seconds, 1),
                      "predict_tta_s_per_subject": round(predict_s, 3),
                      "ensemble_loaded_on": str(next(loaded.parameters()).device),
                      "ensemble_predict_tta_s_per_subject": round(ensemble_s, 3),
                      "ensemble_labels_equal_single_fraction": round(same, 5),
                      "val_dice_after_tta": {segmentation.LABEL_NAMES[k]: round(v, 3) for k, v in dice.items()},
                      "base_width": cfg.base_width, "crop": cfg.crop, "batch_size": cfg.batch_size}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("out")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n-train", type=int, default=2)
    p.add_argument("--n-val", type=int, default=1)
    t = sub.add_parser("train")
    t.add_argument("arrays")
    t.add_argument("--profile", default="full")
    t.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if args.action == "prepare":
        prepare(args.out, args.data_dir, args.n_train, args.n_val)
    else:
        train(args.arrays, args.profile, args.epochs)


if __name__ == "__main__":
    main()
