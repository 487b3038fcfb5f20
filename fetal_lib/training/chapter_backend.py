"""The Keras backend of chapter 1 (HC18 U-Net): on a CPU that trains it in float32, PyTorch (issue 48).

Keras 3 runs the same model code on TensorFlow or on PyTorch; which one trains faster depends on the
network, the CPU and the precision. Measured for chapter 1 held to AVX2 and one core
(``tools/emulate_avx2.sh``: float32, the common reader's CPU; 2026-11-29, 1cc10db):

* the whole chapter (``fetal book --only hc18``) took 32.3 min on torch against 40.3 on TensorFlow; its
  main U-Net trained at 16.8 images/s against 13.7, its second stage at 8.8 bands/s against 6.7, and its
  other work (inference, ellipse fits, figures) took 272 s against 304; the validation split deployed the
  same variant (cascade (mean) at 0.5: 1.776 mm against 1.782);
* ``fetal bench hc --skip-inference``: 17.4 against 12.4 images/s (TensorFlow with XLA; 13.9 without).
  TensorFlow's ``fit`` ran whole epochs at either of two speeds there (0.40 or 0.64 s a step; a
  ``train_on_batch`` loop always at the faster), torch's always at one; a short probe would therefore
  answer at random, so the choice is this rule, not a timing.

In float32 on the AVX-512 BF16 EPYC torch was also the faster (39.4 against 34.6 images/s); in
``mixed_bfloat16`` there both trained at 45-55 images/s, and TensorFlow stays (the precision probe, run on
TensorFlow, measured its bfloat16). Chapters 3 and 4 stay on TensorFlow everywhere on the CPU: held to
AVX2 their networks trained faster on it (Xception 43.7 against 25.6 images/s, ``fetal bench us``; the
GA network 99 against 71 samples/s, ``fetal bench ga``).

The rule, in order: ``KERAS_BACKEND`` set by the user (not by ``fetal``'s own automatic choice, which
records the value it chose in ``FETAL_KERAS_BACKEND_AUTO``) or a CUDA GPU decide as
:func:`fetal_lib.training.keras_backend.choose` does; else TensorFlow where the chapter trains in bfloat16
here; else torch. The saved ``.keras`` models load and predict the same on either backend
(``tests/training/test_keras_backend.py``), so chapter 3 and ``fetal hc measure`` read them on TensorFlow.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, Mapping

from fetal_lib.devices import cuda_available
from fetal_lib.training import keras_backend
from fetal_lib.training import precision as precision_mod

FLOAT32_CPU_BACKEND = "torch"  # chapter 1's backend where it trains in float32 on the CPU (measured: see above)
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
    whose bfloat16 the precision probe measures; ``flags``: CPU flags for tests), else torch. Imports no Keras.

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
    return FLOAT32_CPU_BACKEND, ("auto: the chapter trains in float32 on this CPU, where Keras on torch trained its U-Nets "
                                 "faster than on TensorFlow (fetal_lib.training.chapter_backend; KERAS_BACKEND=tensorflow overrides)")


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
