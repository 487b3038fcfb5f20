"""The page: a header, then one tab per task, each built by its tab module, on Gradio's queue.

Every tab's inference runs in its own queue group with one worker (``concurrency_id`` = the tab),
so a model is never used by two threads at once and a slow brain-age request does not hold up an
ultrasound one; previews have their own small group. The queue holds at most
:data:`fetal_lib.app.settings.QUEUE_SIZE` waiting requests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from fetal_lib.app import tab_brain_age, tab_ga, tab_hc, tab_us
from fetal_lib.app.cards import DISCLAIMER
from fetal_lib.app.settings import MAX_FILE_AGE_S, QUEUE_SIZE, SWEEP_EVERY_S
from fetal_lib.app.slots import Slot

#: (tab key, its module), in page order. The key is the tab's elem_id suffix (``tab-<key>``).
TABS = (("hc", tab_hc), ("us", tab_us), ("ga", tab_ga), ("brain_age", tab_brain_age))
TITLE = "Fetal and brain imaging compendium: try the trained models"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load_all(models_dir: Path, log: Callable[[str], None] = _stderr, device: str = "auto") -> dict[str, list[Slot]]:
    """Every tab's models, loaded once (absent ones with their reason), each reported by ``log``; the
    PyTorch ones on ``device`` (``auto``: the GPU when torch sees one)."""
    out = {}
    for key, module in TABS:
        out[key] = module.load_models(Path(models_dir), device=device)
        for slot in out[key]:
            log(f"fetal app: {module.TITLE}: {slot.label}: " + (f"loaded {slot.path} in {slot.load_s:.1f} s" if slot.ready
                                                               else f"not available ({slot.problem})"))
    return out


def header_markdown(models_dir: Path) -> str:
    return (f"# {TITLE}\n\nUpload your own image or volume to a trained model of the compendium. Served on this machine "
            f"only; nothing is sent elsewhere. Models from `{models_dir}`.\n\n**{DISCLAIMER}**")


def build_app(slots: dict[str, list[Slot]], uploads, models_dir: Path):
    """The Gradio Blocks of the whole app, its queue set (call after :func:`fetal_lib.app.settings.offline_environment`)."""
    import gradio as gr

    with gr.Blocks(title="fetal app", analytics_enabled=False, delete_cache=(SWEEP_EVERY_S, MAX_FILE_AGE_S)) as demo:
        gr.Markdown(header_markdown(models_dir), elem_id="app-header")
        with gr.Tabs(elem_id="tabs"):
            for key, module in TABS:
                with gr.Tab(module.TITLE, id=key, elem_id=f"tab-{key}"):
                    module.build(slots[key], uploads)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo
