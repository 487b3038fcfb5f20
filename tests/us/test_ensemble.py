"""Chapter 3's ensemble: the mean of the networks' calibrated probabilities, as one deployable network.

Untrained networks with fixed random weights stand in for trained ones: the ensemble's answer is
then checked against the members' own logits computed independently (NumPy softmax and mean).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

pytest.importorskip("keras")

from fetal_lib.model_card import read_card  # noqa: E402
from fetal_lib.us import ensemble, pipeline  # noqa: E402
from fetal_lib.us.classifier import UsClassifier, softmax  # noqa: E402
from fetal_lib.us.train import UsTrainConfig  # noqa: E402

CLASSES = ["tc", "tt", "tv"]
SIDE = 32


def _member(arch: str, seed: int, temperature: float, arrays, tta=("hflip",)):
    """A stand-in ModelRun: ``arch`` with seeded random weights, its logits on ``arrays``' val and test parts."""
    import keras

    from fetal_lib.networks.keras import create
    from fetal_lib.training.keras import FitResult
    from fetal_lib.us.pipeline import ModelRun, predict_logits

    keras.utils.set_random_seed(seed)
    options = {"widths": [4, 8, 16]}
    model = create(arch, input_shape=(SIDE, SIDE, 1), num_classes=len(CLASSES), **options)
    config = UsTrainConfig(arch=arch, options=options, input_size=(SIDE, SIDE))
    y = np.arange(len(arrays["val"])) % len(CLASSES)
    logits_val, _ = predict_logits(model, arrays["val"], tta)
    logits_test, _ = predict_logits(model, arrays["test"], tta)
    return ModelRun("brain_planes", arch, CLASSES, FitResult(model=model, history={"x": [1]}, epochs_run=3, best_epoch=2, seconds=5.0),
                    config, temperature, y, logits_val, y[: len(arrays["test"])], logits_test,
                    np.asarray([f"g{i}" for i in range(len(arrays["test"]))]), [f"{i}.png" for i in range(len(arrays["test"]))], 1.0, tuple(tta))


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return {p: rng.random((n, SIDE, SIDE, 1)).astype(np.float32) for p, n in (("val", 9), ("test", 6))}


@pytest.fixture(scope="module")
def members(arrays):
    return [_member("plain_cnn", 1, 0.7, arrays), _member("separable_cnn", 2, 2.5, arrays)]


def _independent(members, x, tta=("hflip",)):
    """log(mean of the members' tempered softmax) per view, the views' logits averaged (the classifier's TTA rule)."""
    views = [x, x[:, :, ::-1]] if tta else [x]
    per_view = []
    for v in views:
        probs = [softmax(np.asarray(m.fit.model.predict(v, verbose=0), float), m.temperature) for m in members]
        per_view.append(np.log(np.mean(probs, axis=0)))
    return np.mean(per_view, axis=0)


def test_the_ensemble_scores_the_mean_of_its_members_calibrated_probabilities(members, arrays):
    run = pipeline.architectures_mean_run(members, arrays)
    assert run.arch == ensemble.NAME and run.task == "brain_planes" and run.tta == ("hflip",)
    np.testing.assert_allclose(run.logits_test, _independent(members, arrays["test"]), atol=1e-5)
    np.testing.assert_allclose(run.logits_val, _independent(members, arrays["val"]), atol=1e-5)
    # without test-time views the ensemble's probabilities are exactly the members' mean
    plain = [SimpleNamespace(**{**m.__dict__, "tta": ()}) for m in members]
    no_tta = pipeline.architectures_mean_run(plain, arrays)
    mean = np.mean([softmax(np.asarray(m.fit.model.predict(arrays["test"], verbose=0), float), m.temperature) for m in members], axis=0)
    np.testing.assert_allclose(softmax(no_tta.logits_test), mean, atol=1e-5)
    assert run.fit.seconds == 0 and run.fit.epochs_run == 0 and not run.fit.history  # it trains nothing of its own
    assert run.config.options == {"members": [{"name": "plain_cnn", "options": {"widths": [4, 8, 16]}},
                                              {"name": "separable_cnn", "options": {"widths": [4, 8, 16]}}],
                                  "temperatures": [0.7, 2.5]}
    with pytest.raises(ValueError, match="at least 2 members of one task"):
        pipeline.architectures_mean_run(members[:1], arrays)


def test_a_saved_ensemble_is_rebuilt_from_its_card_and_answers_the_same(members, arrays, tmp_path):
    run = pipeline.architectures_mean_run(members, arrays)
    clf = UsClassifier(run.fit.model, "brain_planes", CLASSES, (SIDE, SIDE), run.temperature, arch=run.config.arch,
                       options=run.config.options, tta=run.tta)
    path = clf.save(tmp_path / "us_brain_planes.keras", clf.card_fields("smoke"))
    card = read_card(path)
    assert card["architecture"]["name"] == "ensemble"
    assert [m["name"] for m in card["architecture"]["options"]["members"]] == ["plain_cnn", "separable_cnn"]
    loaded = UsClassifier.load(path, "brain_planes")
    np.testing.assert_allclose(loaded.logits_arrays(arrays["test"]), run.logits_test, atol=1e-5)
    np.testing.assert_allclose(loaded.probabilities_arrays(arrays["test"]), softmax(run.logits_test, run.temperature), atol=1e-5)


def test_run_models_adds_the_ensemble_only_where_the_knob_asks(members, arrays, monkeypatch):


    by_arch = {m.arch: m for m in members}
    monkeypatch.setattr(pipeline, "run_model", lambda d, a, cfg, arch, seed, init_model=None: by_arch[arch])
    data = {"brain_planes": SimpleNamespace(task="brain_planes"), "planes": SimpleNamespace(task="planes")}
    lines = []
    runs = pipeline.run_models(data, {"brain_planes": arrays, "planes": arrays},
                               {"brain_planes": {"ensemble": True}, "planes": {"ensemble": False}}, ["plain_cnn", "separable_cnn"],
                               log=lines.append)
    assert set(runs) == {("brain_planes", "plain_cnn"), ("brain_planes", "separable_cnn"), ("brain_planes", "ensemble"),
                         ("planes", "plain_cnn"), ("planes", "separable_cnn")}
    assert lines[2] == f"brain_planes / ensemble: the mean of plain_cnn, separable_cnn, temperature {runs[('brain_planes', 'ensemble')].temperature:.2f}"
    one = pipeline.run_models({"brain_planes": data["brain_planes"]}, {"brain_planes": arrays}, {"brain_planes": {"ensemble": True}},
                              ["plain_cnn"])
    assert set(one) == {("brain_planes", "plain_cnn")}  # one network: nothing to average
    results = pipeline.results_table([pipeline.scores(r, 20) for r in runs.values()])
    eff = pipeline.efficiency_table(runs, results)
    assert "ensemble" in set(results["model"]) and "ensemble" not in set(eff["model"])


def test_the_ensemble_network_refuses_what_it_cannot_be():
    from fetal_lib.networks.keras.ensemble import create

    plain = {"name": "plain_cnn", "options": {"widths": [4, 8]}}
    with pytest.raises(ValueError, match="at least 2 members"):
        create((16, 16, 1), 3, [plain])
    with pytest.raises(ValueError, match="2 temperatures for 3 members"):
        create((16, 16, 1), 3, [plain, plain, plain], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        create((16, 16, 1), 3, [plain, plain], [1.0, 0.0])


def test_task_seeds_train_several_networks_of_one_architecture_and_average_them(arrays, monkeypatch):
    import keras

    from fetal_lib.networks.keras import create
    from fetal_lib.training.keras import FitResult

    from fetal_lib.us import train as us_train

    seeds = []

    def fake_train(config, x, y, xv, yv, k, progress=False, init_model=None):  # an untrained network, seeded by the run's seed
        seeds.append(config.seed)
        keras.utils.set_random_seed(config.seed)
        model = create(config.arch, input_shape=(SIDE, SIDE, 1), num_classes=k, **config.options)
        return FitResult(model=model, history={"val": [0.5, 0.6]}, epochs_run=2, best_epoch=2, seconds=3.0, train_images_per_s=10.0 + config.seed)

    monkeypatch.setattr(us_train, "train", fake_train)
    parts = {**arrays, "train": arrays["val"]}
    data = SimpleNamespace(task="brain_planes", classes=CLASSES, labels=lambda p: np.arange(len(parts[p])) % 3,
                           groups=lambda p: [f"g{i}" for i in range(len(parts[p]))],
                           part=lambda p: [SimpleNamespace(path=SimpleNamespace(name=f"{i}.png")) for i in range(len(parts[p]))])
    settings = {"arch_options": {"plain_cnn": {"widths": [4, 8, 16]}}, "input_rows": SIDE, "input_cols": SIDE, "epochs": 2,
                "batch_size": 4, "learning_rate": 1e-3, "augment": False, "precision": "float32", "jit_compile": False,
                "class_weight": "balanced", "checkpoint": "best", "xception_weights": "", "tta": "hflip"}
    assert pipeline.task_settings({**settings, "task_seeds": {"brain_planes": 3}, "head_crop_tasks": ""}, "brain_planes")["seeds"] == 3
    assert pipeline.task_settings({**settings, "task_seeds": {}, "head_crop_tasks": ""}, "planes")["seeds"] == 1
    with pytest.raises(ValueError, match="task_seeds: planes: the count of networks must be a positive whole number"):
        pipeline.task_seeds({"task_seeds": {"planes": 0}}, "planes")
    with pytest.raises(ValueError, match="unknown task"):
        pipeline.task_seeds({"task_seeds": {"planez": 2}}, "planes")
    single = pipeline.run_model(data, parts, {**settings, "seeds": 1}, "plain_cnn", seed=5)
    seeds.clear()
    run = pipeline.run_model(data, parts, {**settings, "seeds": 3}, "plain_cnn", seed=5)
    assert seeds == [5, 6, 7] and run.arch == "plain_cnn" and len(run.members) == 3
    np.testing.assert_allclose(run.members[0].logits_test, single.logits_test, atol=1e-6)  # the first member is the single run
    np.testing.assert_allclose(run.logits_test, _independent(run.members, arrays["test"]), atol=1e-5)
    assert run.fit.seconds == 9.0 and run.fit.best_epoch == 2 and run.fit.history == {"val": [0.5, 0.6]}
    assert run.config.arch == "ensemble" and [m["name"] for m in run.config.options["members"]] == ["plain_cnn"] * 3
    eff = pipeline.efficiency(run)
    assert eff["parameters"] == 3 * single.fit.model.count_params() and eff["training images/s"] == pytest.approx(16.0)
    assert eff["GFLOPs per image"] == pytest.approx(3 * pipeline.efficiency(single)["GFLOPs per image"])
    # an ensemble of architectures may hold one architecture's seeds
    with pytest.raises(ValueError, match="seeds of one architecture"):
        pipeline.seeds_mean_run([single, SimpleNamespace(**{**single.__dict__, "arch": "xception"})], arrays)
    both = pipeline.architectures_mean_run([run, single], arrays)
    probs = [softmax(run.logits_test, run.temperature), softmax(single.logits_test, single.temperature)]
    np.testing.assert_allclose(both.logits_test, np.log(np.mean(probs, axis=0)), atol=1e-4)
