"""The Keras backend of chapter 1 (HC18 U-Net) on the CPU: TensorFlow again since 2026-11-29 (issue 48).

Keras 3 runs the same model code on TensorFlow or on PyTorch; which one trains faster depends on the
network, the CPU, the precision and how TensorFlow is fed. Measured for chapter 1 held to AVX2 and one
core (``tools/emulate_avx2.sh``: float32, the common reader's CPU):

* d106009 moved chapter 1 in float32 to torch: the whole chapter took 32.3 min on torch against 40.3 on
  TensorFlow (1cc10db), its main U-Net 16.8 against 13.7 images/s, when TensorFlow's ``fit`` ran whole
  epochs at one of two speeds (0.40 or 0.64 s a step), because Keras's feed read ahead on 2 cores;
* fed one batch at a time (:func:`fetal_lib.training.keras_backend.on_demand_dataset`, the same weights as ``fit``), TensorFlow
  with XLA took 31.3 min (4d9c0c0; main U-Net 19.1 images/s, second stage 9.7 bands/s against torch's 8.8)
  with the first stage bit for bit that of the TensorFlow ``fit`` run (validation 1.924 mm): by the rule
  fixed before that run (faster than torch's 32.3 min), chapter 1 in float32 is back on TensorFlow. The
  margin, 3 %, is smaller than the emulated machine's day-to-day variation.

In ``mixed_bfloat16`` on the AVX-512 BF16 EPYC both backends trained at 45-55 images/s and TensorFlow
stayed (the precision probe, run on TensorFlow, measured its bfloat16). Chapters 3 and 4 were always on
TensorFlow on the CPU (held to AVX2 their networks trained faster on it: Xception 43.7 against 25.6
images/s, ``fetal bench us``; the GA network 99 against 71 samples/s, ``fetal bench ga``).

The rule, in order: ``KERAS_BACKEND`` set by the user (not by ``fetal``'s own automatic choice, which
records the value it chose in ``FETAL_KERAS_BACKEND_AUTO``) or a CUDA GPU decide as
:func:`fetal_lib.training.keras_backend.choose` does; else TensorFlow where the chapter trains in bfloat16
here; else :data:`FLOAT32_CPU_BACKEND`. The saved ``.keras`` models load and predict the same on either
backend (``tests/training/test_keras_backend.py``), so chapter 3 and ``fetal hc measure`` read them on TensorFlow.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, Mapping

from fetal_lib.devices import cuda_available
from fetal_lib.training import keras_backend
from fetal_lib.training import precision as precision_mod

FLOAT32_CPU_BACKEND = "tensorflow"  # chapter 1's backend where it trains in float32 on the CPU (measured: see above; torch until 2026-11-29)
AUTO_MARK = "FETAL_KERAS_BACKEND_AUTO"  # the backend fetal's own automatic choice put in KERAS_BACKEND (not the user)


def user_choice(environ: Mapping[str, str]) -> bool:
    """Whether ``KERAS_BACKEND`` in ``environ`` was set by the user (not by ``fetal``'s automatic choice)."""
    value = (environ.get(keras_backend.ENV) or "").strip().lower()
    return bool(value) and value != (environ.get(AUTO_MARK) or "").strip().lower()


def choose_for_chapter(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                       torch_sees_cuda: Callable[[], bool] = cuda_available,
                       flags: Iterable[str] | None = None) -> tuple[str, str]:
    """``(backend, reason)`` for chapter 1 (``settings``: its ``precision`` and ``jit_compile`` knobs): the
    user's ``KERAS_BACKEND``, or on a CUDA GPU, as :func:`~fetal_lib.training.keras_backend.choose` decides;
    on the CPU TensorFlow where the chapter trains in bfloat16 (``precision`` resolved as on TensorFlow,
    whose bfloat16 the precision probe measures; ``flags``: CPU flags for tests), else :data:`FLOAT32_CPU_BACKEND`. Imports no Keras.

    Raises:
        ValueError: ``KERAS_BACKEND`` names a backend this project does not run on.
    """
    environ = os.environ if environ is None else environ
    if user_choice(environ):
        return keras_backend.choose(environ)
    if torch_sees_cuda():
        return keras_backend.choose({}, torch_sees_cuda=lambda: True)
    precision = precision_mod.resolve(str(settings["precision"]), "keras", flags, xla=bool(settings.get("jit_compile")))
    if precision.is_bfloat16:
        return "tensorflow", f"auto: the chapter trains in {precision.precision} on this CPU ({precision.reason}), so Keras runs on TensorFlow"
    return FLOAT32_CPU_BACKEND, (f"auto: the chapter trains in float32 on this CPU, where Keras on {FLOAT32_CPU_BACKEND} trained it "
                                 "faster (fetal_lib.training.chapter_backend; KERAS_BACKEND overrides)")


def apply_for_chapter(settings: Mapping[str, Any], environ: dict | None = None, keras_imported: bool | None = None,
                      **kwargs) -> tuple[str, str]:
    """Set ``KERAS_BACKEND`` (in ``environ``, default this process's, so its children inherit it) to
    :func:`choose_for_chapter`'s answer and mark an automatic answer as such; returns ``(backend, reason)``.
    Where Keras is already imported (``keras_imported``: default, whether it is) its backend stays, and the
    reason says so."""
    environ = os.environ if environ is None else environ
    if (sys.modules.get("keras") is not None) if keras_imported is None else keras_imported:
        backend = keras_backend.name()
        environ[keras_backend.ENV] = backend
        return backend, "Keras was already imported with this backend"
    chosen_by_user = user_choice(environ)
    backend, reason = choose_for_chapter(settings, environ, **kwargs)
    environ[keras_backend.ENV] = backend
    if not chosen_by_user:
        environ[AUTO_MARK] = backend
    return backend, reason
