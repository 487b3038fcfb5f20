"""Chapter 1's Keras backend (fetal_lib.training.chapter_backend): the user's ``KERAS_BACKEND`` and a GPU
decide as everywhere; on the CPU TensorFlow whether the chapter trains in bfloat16 or in float32 (torch in float32 until
2026-11-29); the automatic choice is marked so that a chapter kernel started by ``fetal book`` may choose again."""

from __future__ import annotations

import os

import pytest

from fetal_lib.training import chapter_backend
from fetal_lib.training.chapter_backend import AUTO_MARK

NO_NATIVE = ("avx2", "fma")  # CPU flags without native bfloat16: auto resolves to float32 from the flags alone
NATIVE = ("avx2", "avx512_bf16")  # with it (and no measured speed-up injected): auto resolves to bfloat16
AUTO = {"precision": "auto", "jit_compile": True}
NO_GPU, GPU = (lambda: False), (lambda: True)


def test_user_choice_tells_the_users_backend_from_fetals_own() -> None:
    assert chapter_backend.user_choice({"KERAS_BACKEND": "torch"})
    assert not chapter_backend.user_choice({})
    assert not chapter_backend.user_choice({"KERAS_BACKEND": "tensorflow", AUTO_MARK: "tensorflow"})
    assert chapter_backend.user_choice({"KERAS_BACKEND": "torch", AUTO_MARK: "tensorflow"})  # set since, by the user


def test_the_users_backend_and_a_gpu_are_never_second_guessed() -> None:
    backend, reason = chapter_backend.choose_for_chapter(AUTO, {"KERAS_BACKEND": "tensorflow"}, NO_GPU, NO_NATIVE)
    assert backend == "tensorflow" and "set by the user" in reason
    backend, reason = chapter_backend.choose_for_chapter(AUTO, {}, GPU, NO_NATIVE)
    assert backend == "torch" and "CUDA" in reason
    with pytest.raises(ValueError, match="jax"):
        chapter_backend.choose_for_chapter(AUTO, {"KERAS_BACKEND": "jax"}, NO_GPU, NO_NATIVE)


def test_float32_and_bfloat16_on_the_cpu_run_on_tensorflow() -> None:
    backend, reason = chapter_backend.choose_for_chapter(AUTO, {}, NO_GPU, NO_NATIVE)
    assert backend == "tensorflow" == chapter_backend.FLOAT32_CPU_BACKEND and "float32" in reason and "KERAS_BACKEND" in reason
    backend, reason = chapter_backend.choose_for_chapter(AUTO, {}, NO_GPU, NATIVE)
    assert backend == "tensorflow" and "mixed_bfloat16" in reason
    # float32 asked for on a CPU with native bfloat16: float32 it is
    assert chapter_backend.choose_for_chapter({"precision": "float32", "jit_compile": False}, {}, NO_GPU, NATIVE)[0] == "tensorflow"
    # fetal's own automatic choice (from a parent `fetal book`) is chosen again, as if unset
    marked = {"KERAS_BACKEND": "torch", AUTO_MARK: "torch"}
    assert chapter_backend.choose_for_chapter(AUTO, marked, NO_GPU, NO_NATIVE)[0] == "tensorflow"


def test_apply_for_chapter_sets_and_marks_the_environment_for_the_kernels_children() -> None:
    env: dict = {}
    backend, _ = chapter_backend.apply_for_chapter(AUTO, env, keras_imported=False, torch_sees_cuda=NO_GPU, flags=NO_NATIVE)
    assert backend == "tensorflow" and env == {"KERAS_BACKEND": "tensorflow", AUTO_MARK: "tensorflow"}
    users = {"KERAS_BACKEND": "torch"}
    assert chapter_backend.apply_for_chapter(AUTO, users, keras_imported=False, torch_sees_cuda=NO_GPU, flags=NO_NATIVE)[0] == "torch"
    assert users == {"KERAS_BACKEND": "torch"}  # the user's, unmarked


def test_where_keras_is_imported_its_backend_stays_and_the_reason_says_so() -> None:
    import keras

    env: dict = {}
    backend, reason = chapter_backend.apply_for_chapter(AUTO, env, keras_imported=True, torch_sees_cuda=NO_GPU, flags=NO_NATIVE)
    assert backend == keras.backend.backend() and "already imported" in reason
    assert env == {"KERAS_BACKEND": backend}


def test_the_fetal_command_marks_its_automatic_choice(monkeypatch) -> None:
    from fetal_lib.cli import main

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delenv(AUTO_MARK, raising=False)
    assert main(["doctor", "--skip-bench"]) == 0
    assert os.environ[AUTO_MARK] == os.environ["KERAS_BACKEND"]
    monkeypatch.setenv("KERAS_BACKEND", os.environ["KERAS_BACKEND"])
    monkeypatch.delenv(AUTO_MARK)
    assert main(["doctor", "--skip-bench"]) == 0
    assert AUTO_MARK not in os.environ  # the user's own
