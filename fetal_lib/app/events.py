"""What every tab's events share: running a request so that bad input becomes a message in the page
(never a crash), the upload previews, and the note about uploads being deleted.

Previews run in their own small pool (``concurrency_id="preview"``), so a preview never waits
behind a slow inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from fetal_lib.app.messages import error_markdown, log_unexpected, unexpected_markdown
from fetal_lib.errors import FetalInputError
from fetal_lib.app.render import grey_rgb
from fetal_lib.app.render import volume_preview as render
from fetal_lib.app.uploads import uploaded
from fetal_lib.data.imaging import read_nifti

T = TypeVar("T")
UPLOAD_NOTE = ("Files are processed on this machine only and deleted from it as soon as they are processed: "
               "upload again for another run.")
PREVIEW_CONCURRENCY = 2
#: Buttons on every picture: no "share" (it would post to Hugging Face).
IMAGE_BUTTONS = ["download", "fullscreen"]


class Refused(Exception):
    """A request that could not be answered; ``markdown`` says why, for the page."""

    def __init__(self, markdown: str):
        super().__init__(markdown)
        self.markdown = markdown


def run(action: str, fn: Callable[[], T]) -> T:
    """``fn()``, with bad input (FetalInputError) and unexpected failures turned into :class:`Refused`."""
    try:
        return fn()
    except FetalInputError as err:
        raise Refused(error_markdown(action, err)) from None
    except Exception as exc:  # noqa: BLE001 - the app keeps serving whatever one request does
        log_unexpected(action, exc)
        raise Refused(unexpected_markdown(action, exc)) from None


def upload_path(path, what: str) -> Path:
    """The upload's path (FetalInputError when nothing was uploaded or it is gone)."""

    return uploaded(path, what)


def image_preview(path, what: str = "an image", reader: Callable | None = None):
    """(RGB preview, message) of an uploaded 2-D image; a bad file gives (None, its message)."""

    if path is None:
        return None, ""
    read = reader
    if read is None:
        from fetal_lib.data.imaging import read_image_gray as read  # local: the only statement of its branch
    try:
        image = run("read this file", lambda: read(upload_path(path, what)))
    except Refused as refused:
        return None, refused.markdown
    return grey_rgb(image), ""


def volume_preview(path, what: str = "a volume"):
    """(three mid slices, message) of an uploaded 3-D NIfTI; a bad file gives (None, its message)."""

    if path is None:
        return None, ""

    def read():
        import SimpleITK as sitk

        image = read_nifti(upload_path(path, what), ndim=3)
        return render(sitk.GetArrayFromImage(image), image.GetSpacing())

    try:
        return run("read this file", read), ""
    except Refused as refused:
        return None, refused.markdown


def preview_image_on_upload(file, preview, message, reader: Callable | None = None) -> None:
    """Show the decoded image in ``preview`` when a file is uploaded (or its problem in ``message``)."""
    file.upload(lambda p: image_preview(p, reader=reader), file, [preview, message],
                concurrency_limit=PREVIEW_CONCURRENCY, concurrency_id="preview", api_visibility="private")
    file.clear(lambda: (None, ""), None, [preview, message], queue=False, api_visibility="private")


def preview_volume_on_upload(file, preview, message) -> None:
    """Show three mid slices in ``preview`` when a NIfTI is uploaded (or its problem in ``message``)."""
    file.upload(volume_preview, file, [preview, message],
                concurrency_limit=PREVIEW_CONCURRENCY, concurrency_id="preview", api_visibility="private")
    file.clear(lambda: (None, ""), None, [preview, message], queue=False, api_visibility="private")
