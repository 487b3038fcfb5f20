"""Chapter 3 as library calls: per task, each model trained on the grouped split, its temperature
fitted on validation, and its test split scored; the leak demonstration; the efficiency figures.

The data and splits come from :mod:`fetal_lib.us.tasks` (grouped by patient or source image), the
arrays from :mod:`fetal_lib.us.arrays`, training from :mod:`fetal_lib.us.train` (the shared Keras
harness), the temperature from :mod:`fetal_lib.us.calibration`. The knobs' values live in the
``us_classification:`` section of ``profiles/<profile>.yaml``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.networks.parameters import count_parameters
from fetal_lib.paths import shown
from fetal_lib.us.spec import SPEC
from fetal_lib.us.tasks import TASKS, load_task
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.metrics.classification import classification_report, expected_calibration_error
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.names import split_names as split
from fetal_lib.training import precision as precision_mod
from fetal_lib.us.arrays import load_arrays
from fetal_lib.us.calibration import fit_temperature
from fetal_lib.us.test_views import parse_tta
from fetal_lib.us.test_views import tta_logits
from fetal_lib.us import ensemble
from fetal_lib.us.efficiency import flops
from fetal_lib.us.floor import validation_balanced_accuracy
from fetal_lib.us.train import UsTrainConfig

CHAPTER = "us_classification"


def profile_settings(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chapter's knobs as ``profiles/<profile>.yaml`` ``us_classification:`` sets them, then ``overrides``."""

    return chapter_knobs(SPEC, profile, overrides)


def split_names(text: str | Sequence[str]) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (:func:`fetal_lib.names.split_names`)."""

    return split(text)


def head_crop_spec(settings: dict[str, Any], task: str):
    """The :class:`~fetal_lib.us.head_crop.HeadCropSpec` of ``task`` under ``settings``, or None
    (the task is not in ``head_crop_tasks``: whole images)."""
    from fetal_lib.us.head_crop import HeadCropSpec  # deferred: imports scipy

    if task not in split_names(settings.get("head_crop_tasks") or ""):
        return None
    return HeadCropSpec(float(settings["head_crop_margin"]), int(settings["head_crop_size"]), bool(settings["head_crop_align"]))


def per_task_value(settings: dict[str, Any], key: str, task: str, default: Any, valid: Callable[[Any], bool], what: str) -> Any:
    """``settings[key][task]`` (a per-task dict knob such as ``task_epochs``) where given, else ``default``.

    Raises:
        ValueError: ``settings[key]`` names an unknown task, or gives a value ``valid`` refuses (a bool always is),
            with ``what`` as the reason (e.g. "the budget in epochs must be a positive whole number")."""
    per_task = settings.get(key) or {}
    unknown = sorted(set(per_task) - set(TASKS))
    if unknown:
        raise ValueError(f"{key}: unknown task(s) {', '.join(unknown)} (known: {', '.join(TASKS)})")
    value = per_task.get(task, default)
    if isinstance(value, bool) or not valid(value):
        raise ValueError(f"{key}: {task}: {what}, got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def per_task_count(settings: dict[str, Any], key: str, task: str, default: int, what: str) -> int:
    """A per-task whole number (:func:`per_task_value`): ``what`` (e.g. "the budget in epochs") must be at least 1."""
    return per_task_value(settings, key, task, default, lambda v: isinstance(v, int) and v >= 1,
                          f"{what} must be a positive whole number")


def task_epochs(settings: dict[str, Any], task: str) -> int:
    """The epoch budget of ``task``'s models: ``task_epochs[task]`` where given, else ``epochs`` (:func:`per_task_count`)."""
    return per_task_count(settings, "task_epochs", task, settings["epochs"], "the budget in epochs")


def task_learning_rate(settings: dict[str, Any], task: str) -> float:
    """The base learning rate of ``task``'s models: ``task_learning_rate[task]`` where given, else ``learning_rate``
    (e.g. a lower one for a task whose networks start from another task's, ``task_init``).

    Raises:
        ValueError: ``task_learning_rate`` names an unknown task, or gives a value that is not a positive number."""
    return float(per_task_value(settings, "task_learning_rate", task, settings["learning_rate"],
                                lambda v: _number(v) and v > 0, "the learning rate must be a positive number"))


def task_label_smoothing(settings: dict[str, Any], task: str) -> float:
    """The label smoothing of ``task``'s loss (each one-hot target mixed with the uniform distribution by this share):
    ``task_label_smoothing[task]`` where given, else 0.

    Raises:
        ValueError: ``task_label_smoothing`` names an unknown task, or gives a value outside [0, 1)."""
    return float(per_task_value(settings, "task_label_smoothing", task, 0.0, lambda v: _number(v) and 0 <= v < 1,
                                "the label smoothing must be a number in [0, 1)"))


def task_mixup(settings: dict[str, Any], task: str) -> float:
    """The mixup alpha of ``task``'s training batches (:mod:`fetal_lib.transforms.mixup`; 0: off):
    ``task_mixup[task]`` where given, else 0.

    Raises:
        ValueError: ``task_mixup`` names an unknown task, or gives a value that is not a number >= 0."""
    from fetal_lib.transforms.mixup import ALPHA_RULE, is_alpha

    return float(per_task_value(settings, "task_mixup", task, 0.0, is_alpha, ALPHA_RULE))


def task_rotation_deg(settings: dict[str, Any], task: str) -> float:
    """The augmentation's rotation range of ``task``'s training images, +-degrees: ``task_rotation_deg[task]`` where given,
    else the classifiers' 10 (:func:`fetal_lib.us.train.augment_config`).

    Raises:
        ValueError: ``task_rotation_deg`` names an unknown task, or gives a value outside 0-180 degrees."""
    return float(per_task_value(settings, "task_rotation_deg", task, 10.0, lambda v: _number(v) and 0 <= v <= 180,
                                "the rotation range must be a number of degrees in [0, 180]"))


def task_head_init(settings: dict[str, Any], task: str) -> str:
    """How ``task``'s classifiers start (:mod:`fetal_lib.us.head_probe`): ``task_head_init[task]`` where given, else
    "random" (as the architecture builds them); "probe" fits each as a linear probe of its started network's features.

    Raises:
        ValueError: ``task_head_init`` names an unknown task, or gives a value other than random or probe."""
    from fetal_lib.us.head_probe import HEAD_INITS

    return str(per_task_value(settings, "task_head_init", task, "random", lambda v: v in HEAD_INITS,
                              f"the classifier's start must be one of {', '.join(HEAD_INITS)}"))


def task_class_weight(settings: dict[str, Any], task: str) -> str:
    """How ``task``'s training balances its classes (:data:`fetal_lib.us.train.CLASS_WEIGHTS`):
    ``task_class_weight[task]`` where given, else ``class_weight``: "balanced" (class-weighted loss), "sampled"
    (class-balanced draws, unweighted loss) or "none".

    Raises:
        ValueError: ``task_class_weight`` names an unknown task, or gives a value not in CLASS_WEIGHTS."""
    from fetal_lib.us.train import CLASS_WEIGHTS, UsTrainConfig

    default = settings.get("class_weight", UsTrainConfig.class_weight)  # the dataclass field's default
    return str(per_task_value(settings, "task_class_weight", task, default,
                              lambda v: v in CLASS_WEIGHTS, f"the class balance must be one of {', '.join(CLASS_WEIGHTS)}"))


def task_tta(settings: dict[str, Any], task: str) -> str:
    """The test-time views of ``task``'s models (:mod:`fetal_lib.us.test_views`): ``task_tta[task]`` where given, else
    ``tta``.

    Raises:
        ValueError: ``task_tta`` names an unknown task, or gives views that are not a comma-separated string of known
            ones; ``tta`` names an unknown view."""
    from fetal_lib.us.test_views import TTA_VIEWS

    def valid(value: Any) -> bool:
        try:
            return isinstance(value, str) and parse_tta(value) is not None
        except ValueError:
            return False

    own = per_task_value(settings, "task_tta", task, None, lambda v: v is None or valid(v),
                         f"the test-time views must be a comma-separated string of {', '.join(TTA_VIEWS)} ('' for none)")
    if own is not None:
        return str(own)
    parse_tta(settings.get("tta") or "")  # ValueError naming an unknown view of tta itself
    return str(settings.get("tta") or "")


def task_seeds(settings: dict[str, Any], task: str) -> int:
    """How many networks of each architecture ``task`` trains, each with its own seed, averaged into its model:
    ``task_seeds[task]`` where given, else 1 (:func:`per_task_count`)."""
    return per_task_count(settings, "task_seeds", task, 1, "the count of networks")


def task_source(settings: dict[str, Any], key: str, task: str) -> str | None:
    """``settings[key][task]`` for a per-task knob that names another task (``task_split_from``, ``task_init``), or None.

    Raises:
        ValueError: the knob names an unknown task, or a task as its own source."""
    per_task = settings.get(key) or {}
    unknown = sorted({str(t) for t in (*per_task, *per_task.values())} - set(TASKS))
    if unknown:
        raise ValueError(f"{key}: unknown task(s) {', '.join(unknown)} (known: {', '.join(TASKS)})")
    source = per_task.get(task)
    if source == task:
        raise ValueError(f"{key}: {task} cannot be its own source")
    return source


def task_settings(settings: dict[str, Any], task: str) -> dict[str, Any]:
    """``settings`` as one task trains with them: ``head_crop`` is the task's crop (a dict) or None,
    a head-cropped task's input is the crop (``input_rows`` = ``input_cols`` = its size), ``epochs``
    is the task's own budget (:func:`task_epochs`), ``learning_rate`` its own (:func:`task_learning_rate`), so is
    ``label_smoothing`` (:func:`task_label_smoothing`), ``mixup`` (:func:`task_mixup`) and ``rotation_deg``
    (:func:`task_rotation_deg`), ``seeds``
    its networks per architecture (:func:`task_seeds`), ``split_from`` the task whose patient split it follows,
    ``init_from`` the task whose networks start its own (:func:`task_source`; None for neither), ``head_init`` how
    its classifiers start (:func:`task_head_init`), ``class_weight`` how it balances its classes
    (:func:`task_class_weight`) and ``tta`` its test-time views (:func:`task_tta`)."""
    spec = head_crop_spec(settings, task)
    out = {**settings, "head_crop": spec.to_dict() if spec else None, "epochs": task_epochs(settings, task),
           "learning_rate": task_learning_rate(settings, task), "label_smoothing": task_label_smoothing(settings, task),
           "mixup": task_mixup(settings, task), "rotation_deg": task_rotation_deg(settings, task),
           "seeds": task_seeds(settings, task), "split_from": task_source(settings, "task_split_from", task),
           "init_from": task_source(settings, "task_init", task), "head_init": task_head_init(settings, task),
           "class_weight": task_class_weight(settings, task), "tta": task_tta(settings, task)}
    if spec is not None:
        out["input_rows"] = out["input_cols"] = spec.size
    return out


def head_finder(settings: dict[str, Any]):
    """The :class:`~fetal_lib.us.head_crop.HeadFinder` of the ``head_finder`` knob (empty: chapter 1's model).

    Raises:
        FetalInputError: the model is missing (says how to make it) or unreadable.
    """
    from fetal_lib.us.head_crop import HeadFinder  # deferred: imports scipy

    return HeadFinder.load(str(settings.get("head_finder") or "") or None)


def load_inputs(items, settings: dict[str, Any], cache_dir=None, finder=None, progress: bool = False):
    """(network inputs (N, rows, cols, 1) of ``items`` under a task's settings (:func:`task_settings`),
    whether each image's head was found (None for whole-image input)).

    Raises:
        ValueError: a head-cropped task without a ``finder``.
    """
    from fetal_lib.us.head_crop import HeadCropSpec, load_head_arrays  # deferred: imports scipy

    if settings.get("head_crop") is None:
        return load_arrays(items, (int(settings["input_rows"]), int(settings["input_cols"])), cache_dir, progress), None
    if finder is None:
        raise ValueError("a head-cropped task needs the head finder (chapter 1's HC18 model)")
    return load_head_arrays(items, finder, HeadCropSpec.from_dict(settings["head_crop"]), cache_dir, progress)


def precision_choice(settings: dict[str, Any], flags=None):
    """The Keras training precision the ``precision`` knob resolves to where Keras computes (its GPU, else this CPU or ``flags``)."""

    return precision_mod.resolve_for_keras(str(settings["precision"]), flags, xla=bool(settings.get("jit_compile")))


def train_config(settings: dict[str, Any], arch: str, seed: int = 0):
    """The :class:`~fetal_lib.us.train.UsTrainConfig` of ``arch`` under ``settings`` (every model the same epochs)."""

    return UsTrainConfig(
        arch=arch,
        options=dict((settings.get("arch_options") or {}).get(arch) or {}),
        input_size=(int(settings["input_rows"]), int(settings["input_cols"])),
        channels=1,
        epochs=int(settings["epochs"]),
        batch_size=int(settings["batch_size"]),
        learning_rate=float(settings["learning_rate"]),
        label_smoothing=float(settings.get("label_smoothing", 0.0)),  # a task's (task_settings); none elsewhere
        mixup=float(settings.get("mixup", 0.0)),  # likewise
        rotation_deg=float(settings.get("rotation_deg", 10.0)),  # likewise
        head_init=str(settings.get("head_init", "random")),  # likewise
        augment=bool(settings["augment"]),
        precision=precision_choice(settings).precision,
        jit_compile=bool(settings["jit_compile"]),
        class_weight=str(settings["class_weight"]),
        checkpoint=str(settings["checkpoint"]),
        seed=int(seed),
        weights_path=(str(settings["xception_weights"]) or None) if arch == "xception" else None,
    )


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = np.asarray(logits, float) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class ModelRun:
    """One model trained on one task and scored on its test split."""

    task: str
    arch: str
    classes: list[str]
    fit: Any  # fetal_lib.training.keras.FitResult (float32 logits model)
    config: Any  # UsTrainConfig
    temperature: float
    y_val: np.ndarray
    logits_val: np.ndarray
    y_test: np.ndarray
    logits_test: np.ndarray
    groups_test: np.ndarray
    files_test: list[str]
    inference_ms_per_image: float
    tta: tuple[str, ...] = ()  # test-time views averaged into every logit above (validation and test)
    members: tuple = ()  # the runs averaged when this model is an ensemble (fetal_lib.us.ensemble), else empty

    def probabilities(self, calibrated: bool = True, part: str = "test") -> np.ndarray:
        logits = self.logits_test if part == "test" else self.logits_val
        return softmax(logits, self.temperature if calibrated else 1.0)


def predict_logits(model, x: np.ndarray, tta: Sequence[str] = ()) -> tuple[np.ndarray, float]:
    """Logits (with the test-time views of ``tta`` averaged in) and the milliseconds per image."""

    t0 = time.perf_counter()
    out = tta_logits(lambda v: np.asarray(model.predict(v, batch_size=32, verbose=0), float), x, tta)
    return out, 1000 * (time.perf_counter() - t0) / max(1, len(x))


def score_network(network, arrays: Mapping[str, np.ndarray], y_val: np.ndarray, tta: Sequence[str]) -> tuple[float, np.ndarray, np.ndarray, float]:
    """``network`` scored as every model here is: (temperature fitted on validation, validation logits, test logits,
    milliseconds per test image), its logits through the test-time views ``tta`` (``arrays``: part -> images)."""
    logits_val, _ = predict_logits(network, arrays["val"], tta)
    logits_test, ms = predict_logits(network, arrays["test"], tta)
    return float(fit_temperature(logits_val, y_val)), logits_val, logits_test, ms


def run_model(data, arrays: dict[str, np.ndarray], settings: dict[str, Any], arch: str, seed: int = 0,
              progress: bool = False, init_model=None) -> ModelRun:
    """Train ``arch`` on ``data``'s train part, keep the epoch its checkpoint rule chooses on validation, fit the temperature on
    validation, and predict the test part (``arrays``: part -> (N, rows, cols, 1) images).

    With ``seeds`` N > 1 in ``settings`` (a task's, :func:`task_settings`), N networks train, with seeds ``seed`` ...
    ``seed + N - 1`` (the first is the one a single run trains), and the model is their ensemble
    (:func:`seeds_mean_run`, named ``arch``). ``init_model``: another task's trained network of ``arch`` that starts
    every network trained here (:func:`fetal_lib.us.train.train`)."""
    from fetal_lib.us.train import train  # looked up at call time: a test replaces it

    n = int(settings.get("seeds") or 1)
    if n > 1:
        members = [run_model(data, arrays, {**settings, "seeds": 1}, arch, seed + i, progress, init_model) for i in range(n)]
        return seeds_mean_run(members, arrays)

    config = train_config(settings, arch, seed)
    tta = parse_tta(settings.get("tta") or ())
    k = len(data.classes)
    fit = train(config, arrays["train"], data.labels("train"), arrays["val"], data.labels("val"), k, progress=progress,
                init_model=init_model)
    temperature, logits_val, logits_test, ms = score_network(fit.model, arrays, data.labels("val"), tta)
    return ModelRun(data.task, arch, list(data.classes), fit, config, temperature, data.labels("val"), logits_val,
                    data.labels("test"), logits_test, np.asarray(data.groups("test")), [i.path.name for i in data.part("test")], ms,
                    tta)


def with_views(run: ModelRun, arrays: Mapping[str, np.ndarray], tta: Sequence[str]) -> ModelRun:
    """``run``'s trained network scored again through the test-time views ``tta`` instead of its own: its validation
    and test logits predicted anew, its temperature fitted again on validation (nothing trains; ``arrays``: the
    parts :func:`run_model` trained and scored on)."""
    import dataclasses

    tta = parse_tta(tta)
    temperature, logits_val, logits_test, ms = score_network(run.fit.model, arrays, run.y_val, tta)
    return dataclasses.replace(run, temperature=temperature, logits_val=logits_val, logits_test=logits_test,
                               inference_ms_per_image=ms, tta=tta)


def architectures_mean_run(members: Sequence, arrays: Mapping[str, np.ndarray]) -> ModelRun:
    """The mean of one task's architectures (:data:`fetal_lib.us.ensemble.NAME`), each also a run of
    its own: :func:`mean_network_run` with a ``fit`` that has no history, epochs or seconds (it
    trains nothing of its own).

    Raises:
        ValueError: fewer than two members, or members of different tasks.
    """
    from fetal_lib.training.keras import FitResult  # deferred: imports Keras

    return mean_network_run(members, arrays, ensemble.NAME,
                            lambda network: FitResult(model=network, time_capped=any(r.fit.time_capped for r in members),
                                                      device=members[0].fit.device))


def seeds_mean_run(members: Sequence, arrays: Mapping[str, np.ndarray]) -> ModelRun:
    """One architecture trained with several seeds (the ``task_seeds`` knob), as that architecture's
    model: :func:`mean_network_run` named after the architecture, with the first member's history
    and kept epoch (the figures' curve) and all the members' seconds.

    Raises:
        ValueError: fewer than two members, or members of different tasks or architectures.
    """
    from fetal_lib.training.keras import FitResult  # deferred: imports Keras

    if len({r.arch for r in members}) != 1:
        raise ValueError(f"seeds of one architecture expected, got {[r.arch for r in members]}")
    first = members[0]

    def fit(network):
        return FitResult(model=network, history=first.fit.history, epochs_run=first.fit.epochs_run, best_epoch=first.fit.best_epoch,
                         seconds=float(sum(r.fit.seconds for r in members)), train_seconds=float(sum(r.fit.train_seconds for r in members)),
                         train_images_per_s=float(np.mean([r.fit.train_images_per_s for r in members])),
                         time_capped=any(r.fit.time_capped for r in members), device=first.fit.device)

    return mean_network_run(members, arrays, first.arch, fit)


def mean_network_run(members: Sequence, arrays: Mapping[str, np.ndarray], name: str, fit: Callable[[Any], Any]) -> ModelRun:
    """The mean of one task's trained ``members`` as one network, scored as they are: its logits (log mean
    probability) on the validation and test parts of ``arrays`` through the same test-time views, a
    temperature fitted on validation on top. Its ``config`` is the first member's recipe with ``arch``
    :data:`fetal_lib.us.ensemble.NAME` (the registry's ensemble network) and the members in ``options``;
    ``fit(network)`` makes its ``FitResult`` (:func:`architectures_mean_run`, :func:`seeds_mean_run`).

    Raises:
        ValueError: fewer than two members, or members of different tasks.
    """
    import dataclasses

    from fetal_lib.networks.keras.ensemble import copy_member_weights, create  # deferred: imports Keras

    if len(members) < 2 or len({r.task for r in members}) != 1:
        raise ValueError(f"an ensemble needs at least 2 members of one task, got {[(r.task, r.arch) for r in members]}")
    first = members[0]
    options = ensemble.network_options(members)
    rows, cols = first.config.input_size
    network = create((rows, cols, first.config.channels), len(first.classes), **options)
    copy_member_weights(network, [r.fit.model for r in members])
    temperature, logits_val, logits_test, ms = score_network(network, arrays, first.y_val, first.tta)
    config = dataclasses.replace(first.config, arch=ensemble.NAME, options=options, weights_path=None)
    return ModelRun(first.task, name, list(first.classes), fit(network), config, temperature, first.y_val, logits_val, first.y_test,
                    logits_test, first.groups_test, list(first.files_test), ms, first.tta, tuple(members))


def scores(run: ModelRun, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Test figures of one model: accuracy, balanced accuracy, macro precision/recall/F1, macro AUC
    (each with a bootstrap 95 % CI resampling whole groups: patients or source images), ECE before
    and after the temperature, and the per-class report."""

    k = len(run.classes)
    labels = list(range(k))
    prob = run.probabilities(calibrated=True)
    raw = run.probabilities(calibrated=False)
    pred = prob.argmax(axis=1)
    y = run.y_test
    report = classification_report(y, pred, prob if k > 2 else prob[:, 1], labels)
    groups = run.groups_test if len(np.unique(run.groups_test)) > 1 else None

    def ci(stat, *arrays):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            c = bootstrap_ci(stat, *arrays, n_boot=n_boot, seed=seed, groups=groups)
        return [float(c.low), float(c.high)]

    def macro(name):
        return lambda t, s: classification_report(t, s.argmax(axis=1), s if k > 2 else s[:, 1], labels)["macro"][name]

    def overall(name):
        return lambda t, s: classification_report(t, s.argmax(axis=1), None, labels)[name]

    correct = pred == y
    return {
        "task": run.task, "model": run.arch, "n_test": int(len(y)), "n_test_groups": int(len(np.unique(run.groups_test))),
        "accuracy": report["accuracy"], "accuracy_ci": ci(overall("accuracy"), y, prob),
        "balanced_accuracy": report["balanced_accuracy"], "balanced_accuracy_ci": ci(overall("balanced_accuracy"), y, prob),
        "precision_macro": report["macro"]["precision"], "recall_macro": report["macro"]["recall"],
        "f1_macro": report["macro"]["f1"], "f1_macro_ci": ci(macro("f1"), y, prob),
        "auc_macro": report["macro"]["roc_auc"], "auc_macro_ci": ci(macro("roc_auc"), y, prob),
        "ece_before": expected_calibration_error(raw.argmax(axis=1) == y, raw.max(axis=1)),
        "ece_after": expected_calibration_error(correct, prob.max(axis=1)),
        "temperature": run.temperature,
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
    }


def efficiency(run: ModelRun) -> dict[str, Any]:
    """Parameters, FLOPs per image, training images/s and inference ms per image of one trained model (an
    ensemble's: its members' parameters and FLOPs summed, their training time summed at their mean rate)."""

    rows, cols = run.config.input_size
    nets = [m.fit.model for m in run.members] or [run.fit.model]
    rates = [m.fit.train_images_per_s for m in run.members] or [run.fit.train_images_per_s]
    return {"task": run.task, "model": run.arch, "parameters": int(sum(count_parameters(n) for n in nets)),
            "GFLOPs per image": sum(flops(n, (rows, cols, run.config.channels)) for n in nets) / 1e9,
            "training images/s": float(np.mean(rates)), "training (min)": float(run.fit.seconds) / 60.0,
            "inference ms/image": float(run.inference_ms_per_image)}


def results_table(all_scores: Sequence[dict[str, Any]]):
    """One row per task and model: the headline test figures with their CIs."""
    import pandas as pd

    rows = []
    for s in all_scores:
        rows.append({
            "task": s["task"], "model": s["model"], "test images": s["n_test"], "test groups": s["n_test_groups"],
            "accuracy": s["accuracy"], "accuracy CI": _ci_text(s["accuracy_ci"]),
            "balanced accuracy": s["balanced_accuracy"], "balanced accuracy CI": _ci_text(s["balanced_accuracy_ci"]),
            "precision (macro)": s["precision_macro"], "recall (macro)": s["recall_macro"],
            "F1 (macro)": s["f1_macro"], "F1 CI": _ci_text(s["f1_macro_ci"]),
            "AUC (macro)": s["auc_macro"], "AUC CI": _ci_text(s["auc_macro_ci"]),
            "ECE before T": s["ece_before"], "ECE after T": s["ece_after"], "temperature": s["temperature"],
        })
    return pd.DataFrame(rows)


def _ci_text(ci: Sequence[float]) -> str:
    lo, hi = ci
    return "-" if not (math.isfinite(lo) and math.isfinite(hi)) else f"{lo:.3f}-{hi:.3f}"


def per_class_table(s: dict[str, Any], classes: Sequence[str]):
    """Per-class precision, recall, F1, AUC and support of one model."""
    import pandas as pd

    rows = []
    for i, name in enumerate(classes):
        c = s["per_class"][str(i)]
        rows.append({"class": name, "precision": c["precision"], "recall": c["recall"], "F1": c["f1"], "AUC": c["roc_auc"],
                     "support": c["support"]})
    return pd.DataFrame(rows)


def best_model(all_scores: Sequence[dict[str, Any]], task: str, runs: dict) -> str:
    """The model deployed for ``task``: the highest balanced accuracy on the VALIDATION split (test decides nothing)."""

    best, best_value = None, -math.inf
    for (t, arch), run in runs.items():
        if t != task:
            continue
        value = validation_balanced_accuracy(run)
        if value > best_value:
            best, best_value = arch, value
    return best


def leak_gap(grouped: dict[str, Any], image_level: dict[str, Any]):
    """The leak demonstration's table: the same model and recipe scored on a grouped and on an
    image-level split, and the image-level split's optimism (its figure minus the grouped one)."""
    import pandas as pd

    rows = []
    for key, name in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("auc_macro", "AUC")):
        rows.append({"measure": name, "grouped split (by source image)": grouped[key], "image-level split": image_level[key],
                     "optimism (image-level - grouped)": image_level[key] - grouped[key]})
    return pd.DataFrame(rows)


@dataclass
class TaskInputs:
    """Per task the settings it trains with (:func:`task_settings`), the head finder (None when no
    task is head-cropped, or on a phantom run without one) and the warning of that fallback."""

    settings: dict[str, dict[str, Any]]
    finder: Any  # fetal_lib.us.head_crop.HeadFinder or None
    note: str | None = None


def resolve_inputs(settings: dict[str, Any], tasks: Sequence[str], datasets: Mapping[str, Any]) -> TaskInputs:
    """Each task's input: the head crop its settings ask for, with chapter 1's network as the head finder.

    The phantom fallback: when the finder cannot be loaded and every head-cropped task runs on a
    phantom (chapter 1 saves no phantom model), every task is classified on whole images
    (``input_rows`` x ``input_cols``) and :attr:`TaskInputs.note` says so.

    Raises:
        FetalInputError: the finder is missing or unreadable and a head-cropped task runs on real
            data (the head crop is the recipe; ``fetal book`` runs chapter 1 first).
    """
    per_task = {t: task_settings(settings, t) for t in tasks}
    if not any(c["head_crop"] for c in per_task.values()):
        return TaskInputs(per_task, None)
    try:
        return TaskInputs(per_task, head_finder(settings))
    except FetalInputError as err:
        if not all(datasets[t].source.is_phantom for t, c in per_task.items() if c["head_crop"]):
            raise
        whole = {t: {**c, "head_crop": None, "input_rows": settings["input_rows"], "input_cols": settings["input_cols"]}
                 for t, c in per_task.items()}
        return TaskInputs(whole, None, f"PHANTOM run without a head finder ({shown(err.path) if err.path else ''}: {err.problem}): "
                                       "every task is classified on whole images.")


PARTS = ("train", "val", "test")


def load_part_inputs(datasets: Mapping[str, Any], per_task: Mapping[str, dict[str, Any]], cache_dir=None, finder=None):
    """Task -> part -> (network inputs, heads found or None) of every part of every task (:func:`load_inputs`)."""
    return {t: {p: load_inputs(d.part(p), per_task[t], cache_dir, finder) for p in PARTS} for t, d in datasets.items()}


def run_models(datasets: Mapping[str, Any], part_arrays: Mapping[str, dict[str, np.ndarray]], per_task: Mapping[str, dict[str, Any]],
               archs: Sequence[str], seed: int = 0, log: Callable[[str], None] | None = None) -> dict[tuple[str, str], ModelRun]:
    """Every architecture of ``archs`` trained on every task in turn (:func:`run_model`; tasks outer,
    architectures inner), each summarised on ``log`` (kept epoch, minutes, images/s, temperature); then,
    where a task's settings turn ``ensemble`` on and two or more architectures ran, their ensemble
    (:func:`architectures_mean_run`, keyed :data:`fetal_lib.us.ensemble.NAME`)."""
    check_task_sources(per_task, list(datasets), archs)
    runs = {}
    for t, d in datasets.items():
        for arch in archs:
            init = per_task[t].get("init_from")
            runs[(t, arch)] = r = run_model(d, part_arrays[t], per_task[t], arch, seed,
                                            init_model=trained_network(runs[(init, arch)]) if init else None)
            if log is not None:
                log(f"{t} / {arch}: kept epoch {r.fit.best_epoch} of {r.fit.epochs_run}, {r.fit.seconds / 60:.1f} min, "
                    f"{r.fit.train_images_per_s:.1f} images/s, temperature {r.temperature:.2f}")
        if per_task[t].get("ensemble") and len(archs) >= 2:
            runs[(t, ensemble.NAME)] = r = architectures_mean_run([runs[(t, a)] for a in archs], part_arrays[t])
            if log is not None:
                log(f"{t} / {ensemble.NAME}: the mean of {', '.join(archs)}, temperature {r.temperature:.2f}")
    return runs


def align_splits(datasets: Mapping[str, Any], settings: dict[str, Any], load: Callable[[str], Any]) -> dict[str, Any]:
    """``datasets`` (task -> :class:`~fetal_lib.us.tasks.TaskData`) with each task named in ``task_split_from`` split as
    its source task splits the same patients (:func:`fetal_lib.us.tasks.align_split`); ``load(task)`` reads a source
    task that is not among them."""
    from fetal_lib.us.tasks import align_split

    out = dict(datasets)
    for t, d in datasets.items():
        source = task_source(settings, "task_split_from", t)
        if source:
            out[t] = align_split(d, datasets[source] if source in datasets else load(source))
    return out


def check_task_sources(per_task: Mapping[str, dict[str, Any]], tasks: Sequence[str], archs: Sequence[str]) -> None:
    """Refuse a ``task_init`` that a build cannot honour without a leak, before anything trains.

    Raises:
        ValueError: a task starts from another task's networks but is not split as that task (``task_split_from``:
            the source's training part could hold its validation and test patients), or the source task does not
            run before it (``tasks``)."""
    for i, t in enumerate(tasks):
        source = per_task[t].get("init_from")
        if not source:
            continue
        if per_task[t].get("split_from") != source:
            raise ValueError(f"task_init: {t} starts from {source}'s networks, so it must be split as {source} "
                             f"(task_split_from: {{{t}: {source}}}); else {source}'s training part may hold {t}'s validation "
                             "and test patients")
        if source not in tasks[:i]:
            raise ValueError(f"task_init: {t} starts from {source}'s networks ({', '.join(archs)}): list {source} before {t} in tasks")


def trained_network(run: ModelRun):
    """The trained network of ``run`` that starts another task's (``task_init``): its own, or its first seed's."""
    return (run.members[0] if run.members else run).fit.model


def task_runs(runs: Mapping[tuple[str, str], ModelRun], task: str, archs: Sequence[str]) -> dict[str, ModelRun]:
    """Architecture -> run of one task, in the order of ``archs``."""
    return {a: runs[(task, a)] for a in archs}


def score_of(all_scores: Sequence[dict[str, Any]], task: str, arch: str) -> dict[str, Any]:
    """The :func:`scores` of ``arch`` on ``task``."""
    return next(x for x in all_scores if x["task"] == task and x["model"] == arch)


def efficiency_table(runs: Mapping[tuple[str, str], ModelRun], results):
    """One row per task and model: :func:`efficiency` beside the test balanced accuracy of ``results`` (:func:`results_table`)."""
    import pandas as pd

    eff = pd.DataFrame([efficiency(r) for r in runs.values() if r.arch != ensemble.NAME])  # the ensemble: its members' rows
    return eff.merge(results[["task", "model", "balanced accuracy"]], on=["task", "model"])


def validation_choices(all_scores: Sequence[dict[str, Any]], tasks: Sequence[str], runs: dict) -> dict[str, str]:
    """Per task, the model deployed: the highest validation balanced accuracy (:func:`best_model`).

    The build decides this itself, on training-side data; a grouped CV of ``fetal us cv`` run apart
    is shown beside it for comparison and never changes it."""
    return {t: best_model(all_scores, t, runs) for t in tasks}


@dataclass
class Leak:
    """The leak demonstration: the task loaded with an image-level split, and the gap table (:func:`leak_gap`)."""

    image_level: Any  # fetal_lib.us.tasks.TaskData
    table: Any  # DataFrame


def leak_demonstration(settings: dict[str, Any], per_task: Mapping[str, dict[str, Any]], finder, all_scores: Sequence[dict[str, Any]],
                       data_dir, data_source: str, seed: int = 0, cache_dir=None) -> Leak | None:
    """The same model and recipe (``leak_arch`` on ``leak_task``) trained and tested on an image-level
    split, against its grouped-split scores in ``all_scores``; None when ``leak_task`` is not among the run's tasks."""
    task, arch = settings["leak_task"], settings["leak_arch"]
    if task not in per_task:
        return None
    image_level = load_task(task, data_dir, data_source, seed, split="image")
    leak_cfg = task_settings(settings, task) if finder is not None else per_task[task]
    arrays = {p: load_inputs(image_level.part(p), leak_cfg, cache_dir, finder)[0] for p in PARTS}
    leak_scores = scores(run_model(image_level, arrays, leak_cfg, arch, seed), int(settings["n_bootstrap"]), seed)
    return Leak(image_level, leak_gap(score_of(all_scores, task, arch), leak_scores))
