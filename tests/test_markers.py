"""Every test that trains a model or executes a notebook is marked ``slow``.

``pytest -m "not slow"`` is the quick suite; ``make test`` still runs everything. This module
reads every test module with :mod:`ast` (nothing is imported or run) and fails for a test that
trains or executes a notebook without the mark.

What counts as training or executing a notebook (:func:`is_slow_call`):

1. a call to one of :data:`SLOW_ENTRY_POINTS`, named as the module imports it: ``train_model(...)``
   after ``from fetal_lib.hc.pipeline import train_model``, ``pipeline.train_model(...)`` after
   ``from fetal_lib.hc import pipeline``, ``fit(...)`` after ``from fetal_lib.training.torch import fit``,
   and so on (imports inside functions count too);
2. Keras training by method: ``.fit(..., epochs=...)`` (``Model.fit``; scikit-learn's ``fit(X, y)`` has no
   ``epochs`` and is not training in this sense: it takes milliseconds) or ``.train_on_batch(...)``;
3. a ``fetal`` command whose argv is a list literal with ``"train"`` or ``"cv"`` second, as in
   ``main(["hc", "train", ...])``.

A test trains if its body makes such a call, or calls a function of its module that does
(helpers, followed transitively), or asks for a fixture that does (fixtures of its module and of
the ``conftest.py`` files above it). It is marked if its decorators, its class's decorators or
the module's ``pytestmark`` include ``pytest.mark.slow``.

The check is a floor, not a definition: :data:`NOT_SLOW` lists (with reasons) the few tests that
call an entry point only to see it refuse its input, and a test may be marked slow for another
reason (``tests/hc/test_bench.py`` times a few training steps through ``fetal bench hc``).
Arguments built at run time (``main(argv)``) and calls through ``self`` are not followed.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from fetal_lib.paths import REPO_ROOT

TESTS_DIR = Path(__file__).resolve().parent

#: Functions that train a network or execute a notebook (qualified names).
SLOW_ENTRY_POINTS = (
    "fetal_lib.hc.pipeline.train_model",
    "fetal_lib.hc.train.train",
    "fetal_lib.hc.cross_validation.cross_validate",
    "fetal_lib.brain_age.segmentation.train",
    "fetal_lib.brain_age.pipeline.fold_segmenters",
    "fetal_lib.training.keras.fit",
    "fetal_lib.training.torch.fit",
    "fetal_lib.seg_benchmark.train.train",
    "fetal_lib.seg_benchmark.pipeline.run_arch",
    "fetal_lib.seg_benchmark.pipeline.continue_winner",
    "fetal_lib.us.train.train",
    "fetal_lib.us.pipeline.run_model",
    "fetal_lib.us.efficiency.training_images_per_s",
    "fetal_lib.ga_mri.train.train",
    "fetal_lib.ga_mri.pipeline.run_protocol",
    "fetal_lib.ga_mri.pipeline.train_deployed",
    "fetal_lib.ga_mri.pipeline.by_volume",
    "fetal_lib.ga_mri.deploy.train_deployable",
    "fetal_lib.book.pipeline.run",
    "tiny_chapters.run_tree",  # tests/book/tiny_chapters.py: the book pipeline on a miniature book
    "fetal_lib.book.pipeline.run_chapter",
    "fetal_lib.book.execute.execute_chapter",
    "papermill.execute_notebook",
)
#: The second word of a ``fetal`` command that trains (``fetal hc train``, ``fetal hc cv``, ``fetal brain-age train``).
SLOW_SUBCOMMANDS = ("train", "cv")
#: Tests that call an entry point only to see it refuse its input before anything is trained or
#: executed (they take milliseconds), with the reason. Each must still exist and still be found by the check.
NOT_SLOW = {
    "tests/book/test_pipeline.py::test_missing_parameters_cell_or_unknown_profile_key_fail_before_running":
        "the parameter check fails before any notebook is executed",
    "tests/hc/test_train.py::test_train_rejects_bad_sample_weights": "train() refuses the weights before building a model",
    "tests/us/test_cross_validation.py::test_fetal_us_cv_with_task_init_on_a_phantom":
        "`fetal us cv` refuses task_init before training (no planes validation patient left on the phantom; an unknown task)",
    "tests/us/test_train.py::test_train_refuses_arrays_that_do_not_fit_before_building": "train() refuses the arrays before building a model",
    "tests/us/test_ensemble.py::test_task_seeds_train_several_networks_of_one_architecture_and_average_them":
        "run_model() runs with train() replaced by a stand-in that builds untrained networks (seconds)",
    "tests/ga_mri/test_train.py::test_train_refuses_inputs_that_do_not_fit_before_building": "train() refuses the slices before building a model",
    "tests/commands/test_hc_cli.py::test_train_rejects_a_bad_override": "`fetal hc train` refuses the --set before loading data",
    "tests/commands/test_ga.py::test_train_refuses_a_bad_setting": "`fetal ga train` refuses the --set before loading data",
    "tests/commands/test_seg.py::test_unknown_architecture_is_refused_listing_the_known_ones":
        "`fetal seg train` refuses the architecture before loading data",
    "tests/commands/test_seg.py::test_bad_settings_are_refused_before_training": "`fetal seg train` refuses each bad --set before loading data",
    "tests/commands/test_us.py::test_train_refuses_an_unknown_test_time_view_before_loading_data":
        "`fetal us train` refuses the --set tta before loading data",
    "tests/hc/test_cross_validation.py::test_cv_command_rejects_one_fold": "`fetal hc cv` refuses --folds 1 before loading data",
    "tests/hc/test_cross_validation.py::test_cv_command_refuses_an_unwritable_output_before_training":
        "`fetal hc cv` refuses the output path before training",
}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None (e.g. ``LinearRegression().fit``)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _imports(tree: ast.AST) -> dict[str, set[str]]:
    """Local name -> the qualified names it is imported as, anywhere in the module (functions import too)."""
    names: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names.setdefault(local, set()).add(alias.name if alias.asname else local)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names.setdefault(alias.asname or alias.name, set()).add(f"{node.module}.{alias.name}")
    return names


def is_slow_call(call: ast.Call, imports: dict[str, set[str]]) -> bool:
    """True if ``call`` trains a model or executes a notebook (rules 1-3 of the module docstring)."""
    name = _dotted(call.func)
    if name:
        head, _, rest = name.partition(".")
        if any(q + (f".{rest}" if rest else "") in SLOW_ENTRY_POINTS for q in imports.get(head, {head})):
            return True
    if isinstance(call.func, ast.Attribute) and (call.func.attr == "train_on_batch"
                                                 or call.func.attr == "fit" and any(k.arg == "epochs" for k in call.keywords)):
        return True
    if call.args and isinstance(call.args[0], ast.List) and len(call.args[0].elts) >= 2:
        second = call.args[0].elts[1]
        if isinstance(second, ast.Constant) and second.value in SLOW_SUBCOMMANDS:
            return True
    return False


def _is_fixture(fn: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in fn.decorator_list)


def _marks_slow(decorators_or_value) -> bool:
    nodes = decorators_or_value if isinstance(decorators_or_value, list) else [decorators_or_value]
    return any("mark.slow" in ast.unparse(n) for n in nodes)


def _functions(tree: ast.Module):
    """(function, enclosing class or None) for the module's functions and its classes' methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node, None
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield item, node


def _module_pytestmark(body: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)
               and _marks_slow(n.value) for n in body)


def _params(fn: ast.FunctionDef) -> set[str]:
    return {a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs}


def _slow_functions(tree: ast.Module, slow_fixtures: set[str]) -> set[str]:
    """Names of the module's functions that train: directly, through a helper of the module, or through a fixture."""
    imports = _imports(tree)
    functions = {fn.name: fn for fn, _ in _functions(tree)}
    calls = {name: [n for n in ast.walk(fn) if isinstance(n, ast.Call)] for name, fn in functions.items()}
    fixtures = {name for name, fn in functions.items() if _is_fixture(fn)}
    slow = {name for name, cs in calls.items() if any(is_slow_call(c, imports) for c in cs)}
    while True:  # follow the module's helpers and fixtures until nothing new turns up
        slow_fixtures_here = (slow_fixtures - fixtures) | (slow & fixtures)  # a module's fixture hides a conftest one
        more = {name for name, fn in functions.items() if name not in slow and (
            _params(fn) & slow_fixtures_here or any(isinstance(c.func, ast.Name) and c.func.id in slow for c in calls[name]))}
        if not more:
            return slow
        slow |= more


def conftest_slow_fixtures(conftests: list[str]) -> set[str]:
    """Fixtures of the given conftest sources that train (outermost conftest first)."""
    slow: set[str] = set()
    for source in conftests:
        tree = ast.parse(source)
        fixtures = {fn.name for fn, _ in _functions(tree) if _is_fixture(fn)}
        slow = (slow - fixtures) | (_slow_functions(tree, slow) & fixtures)  # an inner conftest's fixture hides an outer one
    return slow


def unmarked_slow_tests(source: str, conftests: list[str] = ()) -> list[str]:
    """Test functions in ``source`` (a test module) that train or run a notebook but are not marked slow."""
    tree = ast.parse(source)
    slow = _slow_functions(tree, conftest_slow_fixtures(list(conftests)))
    if _module_pytestmark(tree.body):
        return []
    out = []
    for fn, cls in _functions(tree):
        if not fn.name.startswith("test") or fn.name not in slow or _marks_slow(fn.decorator_list):
            continue
        if cls is not None and (not cls.name.startswith("Test") or _marks_slow(cls.decorator_list) or _module_pytestmark(cls.body)):
            continue
        out.append(f"{cls.name}::{fn.name}" if cls is not None else fn.name)
    return out


def _conftests_for(module: Path) -> list[str]:
    """Sources of the conftest.py files from tests/ down to the module's folder."""
    folders = [module.parent, *module.parent.parents]
    folders = [f for f in folders if f == TESTS_DIR or TESTS_DIR in f.parents]
    return [(f / "conftest.py").read_text() for f in reversed(folders) if (f / "conftest.py").is_file()]


def _unmarked_everywhere() -> list[str]:
    found = []
    for module in sorted(TESTS_DIR.rglob("test_*.py")):
        for name in unmarked_slow_tests(module.read_text(), _conftests_for(module)):
            found.append(f"{module.relative_to(REPO_ROOT).as_posix()}::{name}")
    return found


def test_every_test_that_trains_or_runs_a_notebook_is_marked_slow() -> None:
    missing = [t for t in _unmarked_everywhere() if t not in NOT_SLOW]
    assert not missing, ("these tests train a model or execute a notebook but are not marked "
                         f"@pytest.mark.slow (see {Path(__file__).name}): {missing}")


def test_every_exception_is_still_needed() -> None:
    stale = sorted(set(NOT_SLOW) - set(_unmarked_everywhere()))
    assert not stale, f"NOT_SLOW names tests that are gone, renamed, marked slow or no longer train: remove them: {stale}"


def test_every_entry_point_still_exists() -> None:
    """A renamed entry point would silently stop the check above from seeing its callers."""
    gone = []
    for qualified in SLOW_ENTRY_POINTS:
        module, _, name = qualified.rpartition(".")
        if not module.startswith("fetal_lib."):
            continue
        path = REPO_ROOT / (module.replace(".", "/") + ".py")
        defined = path.is_file() and any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
                                         for n in ast.parse(path.read_text()).body)
        if not defined:
            gone.append(qualified)
    assert not gone, f"SLOW_ENTRY_POINTS names functions that no longer exist: {gone}"


# --------------------------------------------------------------------------- the checker itself

CONFTEST = '''
import pytest
from fetal_lib.brain_age import segmentation

@pytest.fixture(scope="session")
def trained_model():
    return segmentation.train([], [], None).model

@pytest.fixture()
def data():
    return [1, 2]
'''

MODULE = '''
import pytest
from fetal_lib.cli import main
from fetal_lib.hc import pipeline
from sklearn.linear_model import LinearRegression


def _helper():
    return pipeline.train_model(None, None)


@pytest.fixture()
def cv_result():
    return main(["hc", "cv", "--folds", "2"])


def test_calls_train_model():
    pipeline.train_model(None, None)

def test_via_helper():
    _helper()

def test_via_module_fixture(cv_result):
    pass

def test_via_conftest_fixture(trained_model):
    pass

def test_keras_fit():
    import keras
    keras.Sequential([]).fit([], [], epochs=2)

def test_harness_fit_imported_inside():
    from fetal_lib.training.torch import fit as torch_fit
    torch_fit(None, None, 4, None, None)

def test_cli_train():
    assert main(["brain-age", "train", "--profile", "smoke"]) == 0

def test_runs_a_notebook():
    import papermill
    papermill.execute_notebook("a.ipynb", "b.ipynb")

@pytest.mark.slow
def test_marked():
    pipeline.train_model(None, None)

class TestGroup:
    def test_in_a_class(self):
        pipeline.train_model(None, None)

@pytest.mark.slow
class TestMarkedGroup:
    def test_in_a_marked_class(self):
        pipeline.train_model(None, None)

def test_not_training(data):
    LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    pipeline.parse_grid("0.5")
    main(["hc", "measure", "x.png"])
    main(["train"])
'''


def test_the_checker_finds_each_kind_of_unmarked_training_test() -> None:
    assert unmarked_slow_tests(MODULE, [CONFTEST]) == [
        "test_calls_train_model", "test_via_helper", "test_via_module_fixture", "test_via_conftest_fixture", "test_keras_fit",
        "test_harness_fit_imported_inside", "test_cli_train", "test_runs_a_notebook", "TestGroup::test_in_a_class",
    ]


def test_the_checker_accepts_a_module_pytestmark() -> None:
    for mark in ("pytestmark = pytest.mark.slow", "pytestmark = [pytest.mark.real_data, pytest.mark.slow]"):
        assert unmarked_slow_tests(MODULE + "\n" + mark + "\n", [CONFTEST]) == []


def test_the_checker_follows_a_fixture_only_through_the_name_in_scope() -> None:
    override = textwrap.dedent('''
        import pytest

        @pytest.fixture()
        def trained_model():
            return "a stand-in, nothing is trained"

        def test_uses_the_local_fixture(trained_model):
            pass
    ''')
    assert unmarked_slow_tests(override, [CONFTEST]) == []
    assert unmarked_slow_tests(override.replace("def trained_model", "def other"), [CONFTEST]) == ["test_uses_the_local_fixture"]


@pytest.mark.parametrize("call, slow", [
    ("fit(model, batches, 4, loss, cfg)", False),  # no import: not the harness
    ("LinearRegression().fit(x, y)", False),
    ("model.fit(x, y, epochs=1)", True),
    ("model.train_on_batch(x, y)", True),
    ('main(["hc", "train"])', True),
    ('main(["hc", "cv", "--folds", "2"])', True),
    ('main(["bench", "hc"])', False),
])
def test_is_slow_call(call: str, slow: bool) -> None:
    node = ast.parse(call).body[0].value
    assert is_slow_call(node, {}) is slow
