"""pyproject.toml and environment.yml pin the same packages at the same versions."""

from __future__ import annotations

import re
import tomllib

import yaml

from fetal_lib.paths import REPO_ROOT


def _norm(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()), version.strip()


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    return dict(_norm(r) for r in reqs)


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(_norm(r) for r in pip_section if not r.startswith("-e"))


def test_every_dependency_is_pinned_exactly() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert "==" in req, f"pyproject.toml: {req!r} is not pinned with =="


def test_pyproject_and_environment_yml_agree() -> None:
    pyproject, conda = _pyproject_pins(), _conda_pins()
    assert pyproject == conda, {
        "only_in_pyproject": sorted(set(pyproject.items()) - set(conda.items())),
        "only_in_environment_yml": sorted(set(conda.items()) - set(pyproject.items())),
    }


def test_installed_versions_match_the_pins() -> None:
    from importlib.metadata import PackageNotFoundError, version

    mismatched = {}
    for name, pinned in _pyproject_pins().items():
        try:
            installed = version(name).split("+")[0]
        except PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            mismatched[name] = (pinned, installed)
    assert not mismatched, f"installed packages differ from the pins (pinned, installed): {mismatched}"
