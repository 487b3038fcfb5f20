"""fetal_lib.app.messages: one line naming the user's file, never the server's temporary path."""

from __future__ import annotations

from fetal_lib.app.messages import error_markdown, problem_line, unexpected_markdown
from fetal_lib.errors import FetalInputError


def test_the_file_is_named_by_its_own_name() -> None:
    err = FetalInputError("/tmp/fetal-app-x/abc/mask.nii.gz", "mask does not match the image t2.nii.gz: size 2x2x2")
    assert problem_line(err) == "mask.nii.gz: mask does not match the image t2.nii.gz: size 2x2x2"
    err = FetalInputError("/tmp/fetal-app-x/abc/a.nii.gz", "cannot read /tmp/fetal-app-x/abc/a.nii.gz")
    assert problem_line(err) == "a.nii.gz: cannot read a.nii.gz"
    assert error_markdown("measure", FetalInputError(None, "no pixel size")) == "**Cannot measure.** no pixel size"


def test_unexpected_errors_say_the_app_goes_on() -> None:
    md = unexpected_markdown("classify", RuntimeError("boom\nsecond line"))
    assert md.startswith("**Cannot classify.** Unexpected error (RuntimeError: boom)") and "still running" in md
