"""Execution profiles (``profiles/<name>.yaml``) and the parameters each chapter gets.

A profile file has a ``common:`` section (knobs for every chapter) and one section per
chapter id (``data:``, ``hc18:``, ``brain_age:`` ...). A chapter's papermill parameters are,
in increasing priority: the standard defaults, ``common:``, its own section, and the
values the pipeline always sets (``profile``, ``data_dir``, ``results_dir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from fetal_lib.config.chapter_spec import ChapterSpec
from fetal_lib.errors import FetalInputError
from fetal_lib.paths import PROFILE_DIR
from fetal_lib.data.sources import SOURCES

PROFILES = ("smoke", "cpu", "full")

# Where each profile takes its data from: smoke always runs on phantoms.
DEFAULT_SOURCE = {"smoke": "phantom", "cpu": "auto", "full": "auto"}


def load_profile(name: str, profile_dir: Path = PROFILE_DIR) -> dict[str, Any]:
    """The parsed YAML of ``profiles/<name>.yaml`` (FetalInputError if absent or malformed)."""
    path = Path(profile_dir) / f"{name}.yaml"
    if not path.is_file():
        raise FetalInputError(path, f"no such profile (known: {', '.join(PROFILES)})")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FetalInputError(path, f"invalid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise FetalInputError(path, "a profile must be a mapping of sections (common:, <chapter id>:)")
    for key, section in doc.items():
        if section is not None and not isinstance(section, dict):
            raise FetalInputError(path, f"section {key!r} must be a mapping of parameters")
    return doc


def chapter_parameters(
    profile: str,
    chapter_id: str,
    results_dir: str | Path,
    data_dir: str | Path | None = None,
    profile_dir: Path = PROFILE_DIR,
) -> dict[str, Any]:
    """Papermill parameters for one chapter: standard ones + ``common:`` + ``<chapter_id>:``."""
    doc = load_profile(profile, profile_dir)
    params: dict[str, Any] = {"data_source": DEFAULT_SOURCE.get(profile, "auto"), "seed": 0}
    params.update(doc.get("common") or {})
    params.update(doc.get(chapter_id) or {})
    params.update(
        {
            "profile": profile,
            "data_dir": "" if data_dir in (None, "") else str(Path(data_dir).expanduser().resolve()),
            "results_dir": str(results_dir),
        }
    )
    params["seed"] = int(params["seed"])
    return params


def profile_seed(profile: str, chapter_id: str, profile_dir: Path = PROFILE_DIR) -> int:
    """The seed a chapter runs with under ``profile`` when none is given: its section's ``seed``, else
    ``common:``'s, else 0 (as :func:`chapter_parameters` resolves it)."""
    return chapter_parameters(profile, chapter_id, results_dir="", profile_dir=profile_dir)["seed"]


# Parameters every chapter takes from the run, not from its profile section.
RUN_PARAMETERS = ("profile", "data_dir", "data_source", "results_dir", "seed")


def profile_problems(spec: ChapterSpec, profile: str, profile_dir: Path = PROFILE_DIR) -> list[str]:
    """What is wrong with ``profile``'s section for the chapter ``spec`` declares: one line per unknown
    knob, missing knob or value of the wrong type, each naming profile, chapter and knob ([]: none)."""
    section = load_profile(profile, profile_dir).get(spec.id) or {}
    declared = spec.knob_names()
    where = f"profiles/{profile}.yaml: section {spec.id}:"
    problems = [f"{where} unknown knob {name!r} (declared: {', '.join(declared)})" for name in section if name not in declared]
    problems += [f"{where} knob {name!r} is not set (every profile sets every knob of the chapter)"
                 for name in declared if name not in section]
    problems += [f"{where} knob {k.name!r} takes {k.describe_type()}, got {section[k.name]!r}"
                 for k in spec.knobs if k.name in section and not k.accepts(section[k.name])]
    return problems


def chapter_knobs(spec: ChapterSpec, profile: str, overrides: Mapping[str, Any] | None = None,
                  profile_dir: Path = PROFILE_DIR) -> dict[str, Any]:
    """A chapter's knobs as ``profile`` sets them, then the non-``None`` ``overrides``.

    The profile's ``<chapter id>:`` section is the one place a knob's value lives: it must set every
    knob ``spec`` declares, each with a value of its type, and nothing else.

    Raises:
        FetalInputError: the profile's section does not match the declaration (the first problem of
            :func:`profile_problems`, naming profile, chapter and knob).
        ValueError: an override that is not a knob of the chapter.
    """
    problems = profile_problems(spec, profile, profile_dir)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise FetalInputError(Path(profile_dir) / f"{profile}.yaml", problems[0].split(".yaml: ", 1)[1] + more)
    section = load_profile(profile, profile_dir).get(spec.id) or {}
    settings = {n: section[n] for n in spec.knob_names()}
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise ValueError(f"unknown {spec.id} setting {key!r}; known: {', '.join(sorted(settings))}")
        if value is not None:
            settings[key] = value
    return settings


# A value of each knob type: what parse_value types a --set value like.
_REFERENCE: dict[type, Any] = {bool: False, int: 0, float: 0.0, str: "", dict: {}, list: []}

# Parameters of every parameters cell that `--set` cannot change, and what sets them instead.
SET_ELSEWHERE = {
    "profile": "choose it with --profile",
    "data_dir": "give it with --data-dir (or $FETAL_DATA_DIR)",
    "results_dir": "it is always <build>/results/<chapter>",
}


def parse_value(key: str, text: str, reference: Any, choices: Mapping[str, Sequence[str]] | None = None) -> Any:
    """``text`` read as a YAML scalar and typed like ``reference`` (the knob's value in a profile).

    Booleans take true/false/yes/no/on/off/1/0 (any case); whole numbers and decimals take what
    YAML or Python read as one (``2e-3`` too); a mapping or list takes a YAML flow value
    (``{widths: [4, 8]}``); a word is kept as typed (quotes are removed), and must be one of
    ``choices[key]`` when given.

    Raises:
        ValueError: a value of the wrong type or not among ``choices``.
    """
    try:
        loaded = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        loaded = text
    if isinstance(reference, bool):
        word = text.strip().lower()
        if word in ("1", "0"):
            return word == "1"
        value = yaml.safe_load(word) if word else None
        if not isinstance(value, bool):
            raise ValueError(f"{key} takes true or false, got {text!r}")
        return value
    if isinstance(reference, (int, float)):
        if isinstance(loaded, (int, float)) and not isinstance(loaded, bool):
            number = loaded
        else:
            try:
                number = float(text)  # what YAML 1.1 leaves a word: 2e-3, 1e3
            except ValueError:
                raise ValueError(f"{key} takes a number, got {text!r}") from None
        if isinstance(reference, float):
            return float(number)
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(f"{key} takes a whole number, got {text!r}")
        return int(number)
    if isinstance(reference, (dict, list)):
        kind = "mapping such as {key: value}" if isinstance(reference, dict) else "list such as [1, 2]"
        if not isinstance(loaded, type(reference)):
            raise ValueError(f"{key} takes a YAML {kind}, got {text!r}")
        return loaded
    if reference is None:
        value = loaded  # no reference type: the YAML scalar as it reads
    elif isinstance(loaded, str) and text.strip()[:1] in ("'", '"'):
        value = loaded  # a quoted word: its quotes removed
    else:
        value = text.strip()
    if choices and key in choices and value not in choices[key]:
        raise ValueError(f"{key} takes one of {', '.join(choices[key])}, got {text!r}")
    return value


def parse_overrides(spec: ChapterSpec, items: Sequence[str], choices: Mapping[str, Sequence[str]] | None = None,
                    run_parameters: bool = False) -> dict[str, Any]:
    """``["augment_vflip=false", "epochs=12"]`` -> overrides of the knobs ``spec`` declares, each read
    by :func:`parse_value` and typed as the knob is declared.

    The one ``--set KEY=VALUE`` parser of every command (``fetal book``, ``fetal hc train``,
    ``fetal bench ...``). With ``run_parameters`` (``fetal book``), ``seed`` and ``data_source``
    may be set too; ``profile``, ``data_dir`` and ``results_dir`` never (:data:`SET_ELSEWHERE`).

    Raises:
        ValueError: not ``KEY=VALUE``, an unknown key (the message lists the known ones), a value
            of the wrong type, or a word not among ``choices[key]``.
    """

    reference = {k.name: _REFERENCE[k.type] for k in spec.knobs}
    choices = {**{k.name: k.choices for k in spec.knobs if k.choices}, **dict(choices or {})}
    if run_parameters:
        reference = {"seed": 0, "data_source": "auto", **reference}
        choices.setdefault("data_source", SOURCES)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        if run_parameters and key in SET_ELSEWHERE:
            raise ValueError(f"{key} cannot be set with --set: {SET_ELSEWHERE[key]}")
        if key not in reference:
            raise ValueError(f"unknown {spec.id} setting {key!r}; known: {', '.join(sorted(reference))}")
        out[key] = parse_value(key, text, reference[key], choices)
    return out
