"""The README stays short (at most 10 kB) and its links resolve; the detail lives in docs/reproduce.md."""

from __future__ import annotations

import re

from fetal_lib.paths import REPO_ROOT


def test_the_readme_is_short_and_its_local_links_resolve() -> None:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) <= 10_000
    targets = re.findall(r"\]\(([^)#]+)\)", text)
    assert "docs/reproduce.md" in targets
    for target in targets:
        assert (REPO_ROOT / target).exists(), target
    reproduce = (REPO_ROOT / "docs" / "reproduce.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", reproduce):
        assert (REPO_ROOT / "docs" / target).resolve().exists(), target
