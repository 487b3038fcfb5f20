"""A deployed ultrasound classifier: a Keras logits network, its task, classes, input size and temperature.

:class:`UsClassifier` is what ``fetal us classify`` runs and what chapter 3 (and ``fetal us
train``) saves as ``build/models/us_<task>.keras`` with its model card
(``us_<task>.card.json`` beside it). The card carries everything inference needs: the task, the
classes in the network's output order, the input size, and the temperature T; probabilities are
``softmax(logits / T)`` (the same as :func:`fetal_lib.us.calibration.apply`).

Images are read as grey (:func:`fetal_lib.us.arrays.read_for_classification`), letterboxed to
the input size (aspect kept, zero padding), scaled to [0, 1] and run through the network in
batches. A classifier trained on head crops (``head_crop`` in its card: brain sub-planes) first
finds the fetal head with the HC18 network saved beside it (``us_<task>.head.keras``) and
classifies the crop (:mod:`fetal_lib.us.head_crop`); where no head is found it classifies the
whole image and says so. In :meth:`UsClassifier.predict_paths` one bad image is reported and the others are
still classified.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.metrics.classification import classification_report, expected_calibration_error
from fetal_lib.model_card import card_path, read_card
from fetal_lib.model_card import common_fields
from fetal_lib.model_card import load_keras
from fetal_lib.model_card import save_keras
from fetal_lib.networks.keras import names
from fetal_lib.paths import build_dir
from fetal_lib.training.keras_backend import inference_function
from fetal_lib.us.arrays import read_for_classification
from fetal_lib.us.arrays import to_input
from fetal_lib.us.tasks import TASKS
from fetal_lib.us.test_views import RULE as TTA_RULE
from fetal_lib.us.test_views import TTA_VIEWS, parse_tta, tta_logits

PREPROCESSING = "grey (luma), letterboxed to the input size (aspect ratio kept, zero padding centred, area interpolation), /255"
HEAD_PREPROCESSING = ("grey (luma), /255; the fetal head found by the HC18 network (input.head_crop.finder) and a square box of "
                      "half-side margin x its major semi-axis resampled to the input size (fetal_lib.us.head_crop); "
                      "no head found: the whole image letterboxed")
TRAIN_HINT = "`fetal us train --task {task}` (or `fetal book --profile cpu --only us_classification`)"


def default_model_path(task: str) -> Path:
    """``<build_dir>/models/us_<task>.keras`` (FetalInputError for an unknown task)."""

    if task not in TASKS:
        raise FetalInputError(None, f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return build_dir() / "models" / f"us_{task}.keras"


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64 (rows sum to 1)."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def column_name(class_name: str) -> str:
    """The probability column of a class: ``"Fetal brain"`` -> ``"p_fetal_brain"``."""
    return "p_" + (re.sub(r"[^0-9a-z]+", "_", str(class_name).lower()).strip("_") or "class")


def scores(logits: np.ndarray, y: np.ndarray, num_classes: int, temperature: float = 1.0, n_bins: int = 10) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the classes present), top-label ECE and NLL of
    ``softmax(logits / temperature)`` against labels ``y`` (JSON-ready floats)."""

    y = np.asarray(y, np.int64)
    prob = softmax(logits, temperature)
    pred = prob.argmax(axis=1)
    report = classification_report(y, pred, None, list(range(int(num_classes))))
    nll = float(-np.mean(np.log(np.clip(prob[np.arange(len(y)), y], 1e-300, None))))
    return {"n": int(len(y)), "accuracy": float(report["accuracy"]), "balanced_accuracy": float(report["balanced_accuracy"]),
            "ece": float(expected_calibration_error(pred == y, prob.max(axis=1), n_bins)), "nll": nll}


def probability_columns(classes: Sequence[str]) -> list[str]:
    """``p_<class>`` column names, in class order (made unique if two classes slug alike)."""
    out: list[str] = []
    for c in classes:
        name = column_name(c)
        while name in out:
            name += "_"
        out.append(name)
    return out


class UsClassifier:
    """A trained classification network with what inference needs.

    Args:
        model: a ``keras.Model`` mapping (N, rows, cols, 1) images in [0, 1] to (N, K) logits.
        task: the task it classifies (:data:`fetal_lib.us.tasks.TASKS`).
        classes: the K class names in the order of the network's outputs.
        input_size: (rows, cols) of the network input.
        temperature: T of ``softmax(logits / T)`` (1: the raw softmax).
        arch: the registry name of the network (:mod:`fetal_lib.networks.keras`); default: the
            model's name when it is a registered one, else none (the card then says so and the
            model file's own architecture is loaded).
        options: the factory options of ``arch`` (``widths``, ``dropout`` ...; input shape and class
            count are added); with them the card rebuilds the network through the registry.
        tta: test-time views whose logits are averaged with the image's own (:data:`TTA_VIEWS`;
            ``("hflip",)``: the left-right mirror, which training's augmentation also shows).
        head_crop: the crop the network was trained on (:class:`~fetal_lib.us.head_crop.HeadCropSpec`), or None
            (whole images); with it, ``finder`` (:class:`~fetal_lib.us.head_crop.HeadFinder`) finds the head.
    """

    def __init__(self, model, task: str, classes: Sequence[str], input_size: tuple[int, int], temperature: float = 1.0,
                 arch: str | None = None, options: Mapping[str, Any] | None = None, tta: Sequence[str] = (),
                 head_crop=None, finder=None):
        self.model = model
        self.task = str(task)
        self.classes = [str(c) for c in classes]
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.temperature = float(temperature)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"the temperature must be a finite positive number, got {temperature}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be 2 or more distinct names, got {self.classes}")
        if arch is None:

            arch = getattr(model, "name", None) if getattr(model, "name", None) in names() else None
        self.arch = arch
        self.options = None if options is None else dict(options)
        self.tta = parse_tta(tta)
        if head_crop is not None and (finder is None or (int(head_crop.size),) * 2 != self.input_size):
            raise ValueError(f"a head-cropped classifier needs a head finder and a {self.input_size[0]}-pixel crop, "
                             f"got {'no finder' if finder is None else f'a {head_crop.size}-pixel crop'}")
        self.head_crop = head_crop
        self.finder = finder
        self._forward = None

    # --------------------------------------------------------------------- inference

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def probability_columns(self) -> list[str]:
        """``p_<class>`` column names, in class order (:func:`probability_columns`)."""
        return probability_columns(self.classes)

    @property
    def columns(self) -> list[str]:
        """The columns of :meth:`predict_paths` rows: filename, predicted, confidence, p_<class>...
        (and ``head_found`` for a head-cropped classifier)."""
        return ["filename", "predicted", "confidence", *self.probability_columns, *(["head_found"] if self.head_crop else [])]

    def network_input(self, image: np.ndarray):
        """(the network input (rows, cols) float32 in [0, 1] of a uint8 grey image, the head ellipse or None):
        the letterboxed image, or the head crop (the letterboxed image where no head is found)."""

        if self.head_crop is None:
            return to_input(image, self.input_size), None
        from fetal_lib.us.head_crop import head_input  # deferred: imports scipy

        return head_input(image, self.finder, self.head_crop)

    def logits_arrays(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Logits (N, K) float64 of network inputs ``x`` (N, rows, cols, 1) in [0, 1]."""
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or tuple(x.shape[1:3]) != self.input_size:
            raise ValueError(f"expected inputs (N, {self.input_size[0]}, {self.input_size[1]}, 1), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, self.num_classes))
        if self._forward is None:

            self._forward = inference_function(self.model)

        def forward(v: np.ndarray) -> np.ndarray:
            return np.concatenate([self._forward(v[i : i + batch_size]).astype(np.float64)
                                   for i in range(0, len(v), batch_size)], axis=0)

        return tta_logits(forward, x, self.tta)

    def probabilities_arrays(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities (N, K) of network inputs ``x``."""
        return softmax(self.logits_arrays(x, batch_size), self.temperature)

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities (N, K) of uint8 grey images (any sizes: each becomes :meth:`network_input`)."""
        x = np.stack([self.network_input(image)[0] for image in images])[..., None] if len(images) else np.zeros((0, *self.input_size, 1))
        return self.probabilities_arrays(x, batch_size)

    def predict_images(self, ready: Sequence[tuple[Path, np.ndarray, list[str]]], batch_size: int = 32) -> list[dict]:
        """Rows (see :meth:`predict_paths`) of images read by :func:`read_images`."""
        from fetal_lib.us.head_crop import NO_HEAD_WARNING  # deferred: imports scipy

        if not ready:
            return []
        inputs = [self.network_input(image) for _, image, _ in ready]
        prob = self.probabilities_arrays(np.stack([x for x, _ in inputs])[..., None], batch_size)
        cols = self.probability_columns
        rows = []
        for (path, _, notes), (_, head), p in zip(ready, inputs, prob):
            k = int(p.argmax())
            row = {"filename": str(path), "predicted": self.classes[k], "confidence": float(p[k]),
                   **{c: float(v) for c, v in zip(cols, p)}, "warnings": list(notes)}
            if self.head_crop is not None:
                row["head_found"] = head is not None
                if head is None:
                    row["warnings"].append(NO_HEAD_WARNING)
            rows.append(row)
        return rows

    def predict_paths(self, paths: Sequence[str | Path], batch_size: int = 32) -> tuple[list[dict], list[tuple[Path, str]]]:
        """Classify image files; a bad file is reported and the others are still classified.

        Returns:
            (rows, errors): one dict per readable image in input order, with :attr:`columns`
            (``filename`` is the path as given) plus ``warnings`` (a list, e.g. a colour image
            converted to grey); and ``(path, problem)`` per image that could not be read.
        """
        ready, errors = read_images(paths)
        return self.predict_images(ready, batch_size), errors

    # --------------------------------------------------------------------- card, save, load

    def _card_options(self) -> dict:
        options = {k: v for k, v in (self.options or {}).items() if k not in ("weights_path", "name")}
        options.update({"input_shape": [*self.input_size, 1], "num_classes": self.num_classes})
        return options

    def card_fields(self, profile: str) -> dict:
        """What the card of this classifier holds beyond the chapter's additions:
        :func:`fetal_lib.model_card.common_fields` (framework keras, architecture and its options,
        input, profile, provenance) plus ``task``, ``classes`` and ``inference`` (temperature,
        preprocessing). Without a registered ``arch`` the card's ``architecture`` is ``None``
        (the model file's own architecture is loaded)."""

        input_spec = {"rows": self.input_size[0], "cols": self.input_size[1], "channels": 1, "range": [0.0, 1.0],
                      "preprocessing": PREPROCESSING if self.head_crop is None else HEAD_PREPROCESSING}
        if self.head_crop is not None:
            input_spec["head_crop"] = {**self.head_crop.to_dict(), "finder": None, "finder_sha256": None}  # filled by save
        card = common_fields("keras", self.arch or "unregistered", self._card_options(), input_spec, profile)
        if self.arch is None:
            card["architecture"] = None
        elif self.options is None:
            card["architecture"]["options_complete"] = False  # only input shape and classes known: load falls back to the file
        card.update({
            "task": self.task,
            "classes": list(self.classes),
            "inference": {"temperature": self.temperature, "probabilities": "softmax(logits / temperature)",
                          "outputs": "logits", "tta": list(self.tta),
                          "tta_rule": TTA_RULE},
        })
        return card

    def save(self, path: str | Path, card: Mapping[str, Any] | None = None) -> Path:
        """Save the network and its card together, atomically (:func:`fetal_lib.model_card.save_keras`).

        ``card``: the chapter's card (usually ``card_fields(profile)`` plus data, split, training,
        metrics); missing common fields are filled from :meth:`card_fields`, and its task, classes,
        input and temperature are always this classifier's. A head-cropped classifier's finder is
        saved first, beside it (:func:`fetal_lib.us.head_crop.finder_path`), so that a card never
        names a missing file; a stale finder beside a whole-image classifier is removed.
        """
        from fetal_lib.us import head_crop  # deferred: imports scipy

        card = dict(card or {})
        own = self.card_fields(str(card.get("profile", "custom")))
        full = {**own, **card}
        for key in ("framework", "architecture", "input", "task", "classes"):
            full[key] = own[key]
        full["inference"] = {**dict(card.get("inference") or {}), **own["inference"]}
        if self.head_crop is not None:
            saved = head_crop.save_finder(self.finder, head_crop.finder_path(path))
            full["input"]["head_crop"].update(finder=saved.path.name, finder_sha256=saved.sha256,
                                              finder_copied_from=self.finder.describe())
        out = save_keras(self.model, path, full)
        if self.head_crop is None:
            head_crop.remove_finder(path)
        return out

    @classmethod
    def load(cls, path: str | Path | None = None, task: str | None = None) -> "UsClassifier":
        """A saved classifier (default: :func:`default_model_path` of ``task``, else of ``planes``).

        Raises:
            FetalInputError: the file is missing (says which command trains it), its card is
                missing or is not an ultrasound classifier's, its framework is not Keras, its task
                is not ``task`` (naming both), or the model does not match its card.
        """

        if task is not None:
            default_model_path(task)  # unknown task -> FetalInputError listing the known ones
        path = Path(path) if path is not None else default_model_path(task or "planes")
        if not path.is_file():
            what = f"{task} classifier" if task else "ultrasound classifier"
            raise FetalInputError(path, f"no trained {what} here; make one with {TRAIN_HINT.format(task=task or 'TASK')}, "
                                  "or pass --model PATH")
        card = read_card(path)
        cpath = card_path(path)
        if card is None:
            raise FetalInputError(cpath, f"model card missing or unreadable: the classes and temperature of {path.name} are in it")
        framework = card.get("framework")
        if framework != "keras":
            raise FetalInputError(path, f"its card says framework {framework!r}; an ultrasound classifier is a Keras model "
                                  "(framework 'keras')")
        card_task = card.get("task")
        if not card_task or not card.get("classes"):
            raise FetalInputError(path, f"not an ultrasound classifier: its card ({cpath.name}) names no task and classes "
                                  f"({card.get('name') or 'another model'})")
        if task is not None and card_task != task:
            raise FetalInputError(path, f"this model classifies task {card_task!r}, not {task!r}; use --task {card_task}, or "
                                  f"a {task} model (default {default_model_path(task)})")
        try:
            classes = [str(c) for c in card["classes"]]
            spec = card.get("input") or {}
            size = (int(spec["rows"]), int(spec["cols"]))
            temperature = float((card.get("inference") or {}).get("temperature", 1.0))
            tta = parse_tta((card.get("inference") or {}).get("tta") or ())
            crop_section = spec.get("head_crop")
            crop = None
            if crop_section:
                from fetal_lib.us.head_crop import HeadCropSpec  # deferred: imports scipy

                crop = HeadCropSpec.from_dict(crop_section)
        except (KeyError, TypeError, ValueError) as exc:
            raise FetalInputError(cpath, f"card lacks or garbles the input size, head crop or temperature "
                                  f"({type(exc).__name__}: {exc})") from None
        finder = None
        if crop is not None:
            from fetal_lib.us.head_crop import HeadFinder  # deferred: imports scipy

            finder_file = path.parent / str(crop_section.get("finder") or "")
            if not crop_section.get("finder") or not finder_file.is_file():
                raise FetalInputError(finder_file, f"the head finder that {path.name} needs (its card's input.head_crop.finder) "
                                      "is missing; retrain with `fetal book --profile cpu --only us_classification`")
            finder = HeadFinder.load(finder_file)
        model = _load_network(path, card)
        outputs = model.output_shape[-1] if not isinstance(model.output_shape, list) else None
        if outputs != len(classes):
            raise FetalInputError(path, f"the network has {outputs} outputs but its card lists {len(classes)} classes")
        if tuple(model.input_shape[1:3]) not in (size, (None, None)):
            raise FetalInputError(path, f"the network takes {model.input_shape[1:3]} inputs but its card says {size}")
        architecture = card.get("architecture") if isinstance(card.get("architecture"), Mapping) else {}
        arch = architecture.get("name")
        options = None
        if arch and architecture.get("options_complete", True):
            options = {k: v for k, v in (architecture.get("options") or {}).items() if k not in ("input_shape", "num_classes")}
        try:
            return cls(model, card_task, classes, size, temperature, arch=arch, options=options, tta=tta, head_crop=crop,
                       finder=finder)
        except ValueError as exc:
            raise FetalInputError(cpath, str(exc)) from None


def read_images(paths: Sequence[str | Path]) -> tuple[list[tuple[Path, np.ndarray, list[str]]], list[tuple[Path, str]]]:
    """Read image files for classification: ``[(path, uint8 grey image, warnings)]`` of the readable
    ones and ``[(path, problem)]`` of the others (:func:`fetal_lib.us.arrays.read_for_classification`)."""

    ready, errors = [], []
    for p in paths:
        path = Path(p)
        notes: list[str] = []
        try:
            ready.append((path, read_for_classification(path, notes), notes))
        except FetalInputError as err:
            errors.append((path, err.problem))
    return ready, errors


def _load_network(path: Path, card: Mapping[str, Any]):
    """The Keras network of ``path``: rebuilt from its card through the registry with the saved
    weights, else (no or incomplete architecture in the card, or a rebuild that does not fit the
    weights) the file's own architecture."""
    import warnings

    import keras

    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    configure()
    architecture = card.get("architecture")
    if isinstance(architecture, Mapping) and architecture.get("options_complete", True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a failed rebuild warns per layer before it raises
                return load_keras(path)
        except Exception:  # noqa: BLE001 - the card could not rebuild it: the file's own architecture below
            pass
    from fetal_lib.networks.keras import register_layers

    register_layers()  # the custom layers the file's own architecture may name
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure to read the file is bad input
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise FetalInputError(path, f"not a readable Keras model ({type(exc).__name__}: {first})") from None


def classifier_archs() -> list[str]:
    """Registered Keras networks that classify and train on their own (the registry minus chapter 1's U-Net,
    chapter 4's regressor and the ensemble of trained classifiers)."""

    return [n for n in names() if n not in ("unet", "vgg_attention", "ensemble")]
