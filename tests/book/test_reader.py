"""What the reader sees of a chapter: parameters and set-up folded, papermill's cell removed, the .py beside."""

from __future__ import annotations

import nbformat
import pytest

from fetal_lib.book.chapters import discover
from fetal_lib.book.execute import read_source
from fetal_lib.book.reader import PROMPTS, setup_cell_index, source_copy, tag_for_reader, write_source_copy


def _notebook():
    v4 = nbformat.v4
    cells = [v4.new_markdown_cell("# Title"), v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
             v4.new_code_cell("data_dir = '/abs'", metadata={"tags": ["injected-parameters"]}),
             v4.new_markdown_cell("text between"), v4.new_code_cell("run.banner()"), v4.new_code_cell("run.table(df, 'x')")]
    return v4.new_notebook(cells=cells)


def test_tags_fold_parameters_and_set_up_and_remove_the_injected_cell() -> None:
    nb = tag_for_reader(_notebook())
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags == [[], ["parameters", "hide-input"], ["injected-parameters", "remove-cell"], [], ["hide-input"], []]
    assert [c.metadata.get("tags", []) for c in tag_for_reader(nb).cells] == tags  # applying twice changes nothing
    prompts = [c.metadata.get("mystnb", {}).get("code_prompt_show") for c in nb.cells]
    assert prompts == [None, PROMPTS["parameters"], None, None, PROMPTS["setup"], None]


def test_a_notebook_without_parameters_is_left_alone() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    assert setup_cell_index(nb) is None
    assert tag_for_reader(nb).cells[0].metadata.get("tags", []) == []


@pytest.mark.parametrize("chapter", discover(), ids=lambda c: c.id)
def test_the_cell_folded_as_set_up_is_the_one_that_shows_the_provenance(chapter) -> None:
    nb = read_source(chapter.source)
    index = setup_cell_index(nb)
    source = nb.cells[index].source if index is not None else ""
    assert ".banner()" in source or "chapter.start(" in source, (
        f"{chapter.source}: the first code cell after the parameters cell must be the set-up cell that shows the run's "
        "banner (run.banner(), or the chapter's start(), which shows it)")


def test_the_source_is_copied_beside_the_executed_notebook(tmp_path) -> None:
    source = tmp_path / "notebooks" / "01_x.py"
    source.parent.mkdir()
    source.write_text("# %%\nx = 1\n")
    executed = tmp_path / "book" / "chapters" / "01_x.ipynb"
    executed.parent.mkdir(parents=True)
    assert write_source_copy(source, executed) == source_copy(executed) == executed.with_suffix(".py")
    assert executed.with_suffix(".py").read_text() == source.read_text()
    assert sorted(p.name for p in executed.parent.iterdir()) == ["01_x.py"]  # no temporary file left
