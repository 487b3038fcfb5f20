"""The layout every tab shares, built once: uploads, their preview, the tab's own controls, a model
selector where the tab serves several models, the button and the upload note on the left; the
answer, the tab's pictures and the model card on the right.

A tab declares what is its own (:class:`TabLayout`) and :func:`build_tab` lays it out and wires the
events: the preview on upload, the card following the selector, and the button on the tab's own
queue worker (``concurrency_id`` = the tab's key). Every element id is ``<prefix>-<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fetal_lib.app.cards import provenance_markdown
from fetal_lib.app.slots import Slot, missing_markdown
from fetal_lib.app import events


@dataclass(frozen=True)
class TabLayout:
    """What one tab's page holds of its own.

    Attributes:
        key: the tab's key (its queue worker); prefix: the first part of its element ids.
        title: the tab's title (its "no trained model" message names it).
        files: makes the upload components (``gr`` -> list); the first is previewed.
        preview_label: the preview picture's label.
        submit: the button's text; api_name: the button's API name.
        pictures: makes the answer's pictures (``gr`` -> list), between the answer and the card.
        respond: ``(slot, *input values) -> (answer markdown, *pictures, card markdown, *cleared files, preview)``.
        controls: makes the inputs between the preview and the button (``gr`` -> list), if any.
        selector: the label of the model selector (a radio of the ready models' labels; element
            ``<prefix>-<selector_id>``), None for a tab that serves one model.
        volume: the preview shows three slices of a NIfTI volume instead of a 2-D image.
        reader: the 2-D preview's image reader (None: the library's grey reader).
    """

    key: str
    prefix: str
    title: str
    files: Callable[[Any], list]
    preview_label: str
    submit: str
    api_name: str
    pictures: Callable[[Any], list]
    respond: Callable[..., tuple]
    controls: Callable[[Any], list] | None = None
    selector: str | None = None
    selector_id: str = "model"
    volume: bool = False
    reader: Callable | None = None


def card_markdown(slot: Slot) -> str:
    """The model card as every tab shows it (with its metrics)."""
    return provenance_markdown(slot.card, with_metrics=True)


def reply(slot: Slot, uploads, action: str, go: Callable[[], Any], paths: Sequence, render: Callable[[Any], tuple],
          pictures: int) -> tuple:
    """A button's outputs: ``(*render(go()), card markdown)`` and None for each upload and the preview
    (cleared); a refused request gives its message and no pictures instead. The uploads ``paths`` are
    deleted either way.

    ``render(answer)``: (answer markdown, *its ``pictures`` pictures).
    """

    card_md = card_markdown(slot)
    cleared = (None,) * (len(paths) + 1)
    try:
        answer = events.run(action, go)
    except events.Refused as refused:
        return (refused.markdown, *(None,) * pictures, card_md, *cleared)
    finally:
        uploads.discard(*paths)
    return (*render(answer), card_md, *cleared)


def build_tab(layout: TabLayout, slots: Sequence[Slot]) -> None:
    """The tab's components and events (inside ``gr.Blocks`` and a ``gr.Tab``); without any ready
    model, what trains each of them instead."""
    import gradio as gr


    p = layout.prefix
    ready = [s for s in slots if s.ready]
    if not ready:
        gr.Markdown(missing_markdown(layout.title, list(slots)), elem_id=f"{p}-missing")
        return
    by_label = {s.label: s for s in ready}
    absent = [s for s in slots if not s.ready]
    selector = None
    with gr.Row():
        with gr.Column(scale=1):
            files = layout.files(gr)
            preview = gr.Image(label=layout.preview_label, interactive=False, buttons=events.IMAGE_BUTTONS,
                               elem_id=f"{p}-preview", height=220)
            upload_message = gr.Markdown(elem_id=f"{p}-upload-message")
            controls = layout.controls(gr) if layout.controls is not None else []
            if layout.selector is not None:
                selector = gr.Radio(list(by_label), value=ready[0].label, label=layout.selector,
                                    elem_id=f"{p}-{layout.selector_id}")
            submit = gr.Button(layout.submit, variant="primary", elem_id=f"{p}-submit")
            gr.Markdown(events.UPLOAD_NOTE + "".join(f"\n\n{s.label}: {s.problem}" for s in absent), elem_id=f"{p}-notes")
        with gr.Column(scale=2):
            result = gr.Markdown(elem_id=f"{p}-result")
            pictures = layout.pictures(gr)
            card = gr.Markdown(card_markdown(ready[0]), elem_id=f"{p}-card")

    def on_submit(*values):
        if selector is None:
            return layout.respond(ready[0], *values)
        return layout.respond(by_label.get(values[-1], ready[0]), *values[:-1])

    if layout.volume:
        events.preview_volume_on_upload(files[0], preview, upload_message)
    else:
        events.preview_image_on_upload(files[0], preview, upload_message, reader=layout.reader)
    inputs = [*files, *controls]
    if selector is not None:
        selector.change(lambda label: card_markdown(by_label.get(label, ready[0])), selector, card, queue=False)
        inputs.append(selector)
    submit.click(on_submit, inputs, [result, *pictures, card, *files, preview],
                 concurrency_limit=1, concurrency_id=layout.key, api_name=layout.api_name)
