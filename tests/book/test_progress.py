"""What `fetal book` shows while a chapter runs, and the table it ends with."""

from __future__ import annotations

import io
import re

import pytest

from fetal_lib.book.progress import ChapterProgress, clock_text, last_line, mode, section_headings
from fetal_lib.book.summary import ChapterLine, summary_table
from fetal_lib.training.progress import ENV_VAR, epoch_line, report_epoch
from tiny_chapters import PARAMETERS, make_tree, run_tree


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def md(text):
    return {"cell_type": "markdown", "source": text}


def code(text="x = 1"):
    return {"cell_type": "code", "source": text}


CELLS = [md("# Title\n\nintro"), code(), md("## Data\n### detail"), code(), md("text only"), code(),
         md("```\n# not a heading\n```\n## Training"), code()]


def test_each_cell_belongs_to_the_last_level_one_or_two_heading_before_it():
    assert section_headings([code(), *CELLS]) == ["", "Title", "Title", "Data", "Data", "Data", "Data", "Training", "Training"]


def test_mode_is_a_bar_on_a_terminal_and_lines_in_a_log():
    assert mode(Tty(), {}) == "bar"
    assert mode(io.StringIO(), {}) == "lines"
    assert mode(Tty(), {"CI": "true"}) == "lines"
    assert mode(Tty(), {}, off=True) == "off"


def test_helpers():
    assert [clock_text(s) for s in (0, 59, 61, 3600 + 120)] == ["0s", "59s", "1m01s", "1h02m"]
    assert last_line("a\n\x1b[32mepoch 1/3\x1b[0m\r\n\n") == "epoch 1/3"
    assert last_line("10%\r50%\r") == "50%"


def test_a_log_gets_one_line_per_section():
    out, now = io.StringIO(), [0.0]
    progress = ChapterProgress("[2/3] hc18", "lines", out, clock=lambda: now[0])
    progress.begin(CELLS)
    for i in range(len(CELLS)):
        now[0] += 30
        progress.cell_start(i)
        progress.output("epoch 1/3\n")
        progress.cell_done(i)
    progress.close()
    assert out.getvalue().splitlines() == [
        "[2/3] hc18: Title (cell 1/8, 30s)",
        "[2/3] hc18: Data (cell 3/8, 1m30s)",
        "[2/3] hc18: Training (cell 7/8, 3m30s)",
    ]


def test_the_bar_shows_cells_time_section_and_the_last_epoch(tmp_path):
    log = tmp_path / "epochs.log"
    progress = ChapterProgress("[1/1] hc18", "bar", Tty(), epoch_log=log, clock=lambda: 65.0, width=200)
    progress._t0 = 0.0
    progress.headings, progress.total = section_headings(CELLS), len(CELLS)
    progress.cell_start(3)
    progress.cell_done(3)
    progress.output("loading ...\n")
    assert progress.render(bar_width=8) == "[1/1] hc18 [####----] 4/8 1m05s | Data | loading ..."
    log.write_text(epoch_line("train unet", 1, 20, 4.0, loss=0.5) + "\n" + epoch_line("train unet", 2, 20, 8.2, loss=0.25, dice=0.5) + "\n")
    progress.read_epoch_log()
    assert progress.render(bar_width=8).endswith("| Data | train unet: epoch 2/20 loss 0.25 dice 0.5 (8 s)")
    progress.width = 30
    assert len(progress.render()) <= 30


def test_the_training_harness_reports_epochs_only_when_asked(tmp_path, monkeypatch):
    target = tmp_path / "epochs.log"
    monkeypatch.delenv(ENV_VAR, raising=False)
    report_epoch("train", 1, 2, 1.0, loss=1.0)
    assert not target.exists()
    monkeypatch.setenv(ENV_VAR, str(target))
    report_epoch("train", 1, 2, 1.0, loss=1.0)
    report_epoch("train", 2, 2, 2.0, loss=0.5)
    assert target.read_text().splitlines() == ["train: epoch 1/2 loss 1 (1 s)", "train: epoch 2/2 loss 0.5 (2 s)"]


def test_the_end_table_has_a_row_per_chapter():
    lines = [
        ChapterLine("data", tuple(f"d{i}" for i in range(7)), (), 12.4, {"n": 7}),
        ChapterLine("hc18", ("hc18",), (), 245.0, {"dice": 0.91234}, reused=True, overrides={"epochs": 3}),
        ChapterLine("brain_age", (), ("brain_age",), None, {}),
    ]
    rows = summary_table(lines).splitlines()
    assert re.split(r"\s{2,}", rows[0].strip()) == ["chapter", "data", "wall time", "headline"]
    assert re.split(r"\s{2,}", rows[2].strip()) == ["data", "PHANTOM (7 datasets)", "12 s", "n 7"]
    assert re.split(r"\s{2,}", rows[3].strip()) == ["hc18", "PHANTOM (hc18)", "reused (ran 245 s)", "dice 0.9123 [set epochs=3]"]
    assert re.split(r"\s{2,}", rows[4].strip()) == ["brain_age", "real (brain_age)", "? s", "no headline"]
    assert len({row.index("  ", len(row.split()[0]) + 2) for row in rows}) >= 1
    assert len({len(row[: row.rfind("  ")]) for row in rows[2:]}) == 1  # the headline column starts at one place


PRINTING = PARAMETERS + '''
# %% [markdown]
# # Loading

# %%
import os
os.write(2, b"C-LEVEL NOISE\\n")  # as TensorFlow's C++ start-up lines
print("loaded")

# %% [markdown]
# ## Training
# text

# %%
from fetal_lib.training.progress import report_epoch
for epoch in (1, 2):
    report_epoch("train tiny", epoch, 2, float(epoch), loss=1.0 / epoch)
print("trained")
from fetal_lib.results import ChapterRun
ChapterRun("data", profile, data_dir, results_dir, seed, {}).finish({"epochs": 2})
'''


@pytest.mark.slow
def test_a_real_run_streams_sections_and_printed_lines(tmp_path, monkeypatch, capfd):
    """The papermill engine hook, end to end on a tiny chapter: a line per section in a log, the
    kernel's printed lines and the harness's epochs reach the progress (but not the notebook), and
    what the kernel process writes to its stderr outside the cells goes to its log."""
    import json

    from fetal_lib.book import progress as progress_mod

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    make_tree(tmp_path, "common: {seed: 1}\n", PRINTING)
    seen: list[tuple[str, str]] = []
    original_output, original_read = ChapterProgress.output, ChapterProgress.read_epoch_log

    def output(self, text):
        seen.append(("stdout", text))
        original_output(self, text)

    def read_epoch_log(self):
        original_read(self)
        seen.append(("epoch", self.activity))

    monkeypatch.setattr(progress_mod.ChapterProgress, "output", output)
    monkeypatch.setattr(progress_mod.ChapterProgress, "read_epoch_log", read_epoch_log)
    report = run_tree(tmp_path, progress="lines")
    assert report.ok
    err = capfd.readouterr().err
    assert re.search(r"\[1/1\] data: Loading \(cell 3/6, \d+s\)\n\[1/1\] data: Training \(cell 5/6, \d+s\)", err), err
    printed = "".join(text for kind, text in seen if kind == "stdout")
    assert printed.startswith("loaded\ntrained\n")
    assert ("epoch", "train tiny: epoch 2/2 loss 0.5 (2 s)") in seen
    executed = json.loads((tmp_path / "book" / "chapters" / "00_data.ipynb").read_text())
    assert "epoch" not in json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "chapters of this run" in err and "no data" in err
    assert "C-LEVEL NOISE" not in err  # the kernel process's own stderr goes to its log
    assert "C-LEVEL NOISE" in (tmp_path / "build" / "logs" / "data.kernel.log").read_text()
