"""A chapter's declaration in code: its knobs, the models it writes, what it needs, its headline
figures and the decisions its deployed models rest on.

Each chapter package holds one ``spec.py`` with a :class:`ChapterSpec` named ``SPEC`` (nnU-Net's
plans are the model: a typed, declared configuration that code reads). The profiles
(``profiles/<name>.yaml``) give every knob its value per profile and are checked against the
declaration (:func:`fetal_lib.config.profiles.profile_problems`); the notebook's parameters cell and
the commands' ``--set`` read the same declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# The YAML value types a knob may take.
KNOB_TYPES = (bool, int, float, str, dict, list)


@dataclass(frozen=True)
class Knob:
    """One setting a profile gives a value and ``--set KEY=VALUE`` may change.

    Attributes:
        name: the key in the profile's chapter section and in the notebook's parameters cell.
        type: ``bool``, ``int``, ``float``, ``str``, ``dict`` or ``list`` (a float knob takes a whole number too).
        meaning: one line saying what it does.
        unit: the unit of a number (``mm``, ``s``, ``days``, ``epochs`` ...); empty where there is none.
        choices: the words a ``str`` knob may take (empty: any).
    """

    name: str
    type: type
    meaning: str
    unit: str = ""
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in KNOB_TYPES:
            raise TypeError(f"knob {self.name}: type must be one of {', '.join(t.__name__ for t in KNOB_TYPES)}")
        if self.choices and self.type is not str:
            raise TypeError(f"knob {self.name}: only a str knob has choices")

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (as YAML read it) is of this knob's type (and among its choices)."""
        if self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.type)
        return ok and (not self.choices or value in self.choices)

    def describe_type(self) -> str:
        """``int``, ``float``, ``one of a|b`` ...: what a message says the knob takes."""
        return f"one of {'|'.join(self.choices)}" if self.choices else self.type.__name__


@dataclass(frozen=True)
class Decision:
    """A setting the deployed model relies on, and how it was decided.

    Attributes:
        setting: the knob (or knobs) it fixes, e.g. ``epochs`` or ``deploy: architecture per task``.
        how: ``build`` (decided inside every build, on training-side data) or ``profile`` (fixed in the
            profile with its evidence).
        data: the data it was decided on (e.g. ``validation split``, ``5-fold grouped CV of the training side``).
        evidence: the figures behind it (for ``profile``), or what the build compares (for ``build``).
        command: the one command that reproduces it.
    """

    setting: str
    how: str
    data: str
    evidence: str
    command: str

    def __post_init__(self) -> None:
        if self.how not in ("build", "profile"):
            raise ValueError(f"decision {self.setting}: how must be 'build' or 'profile', got {self.how!r}")


@dataclass(frozen=True)
class ChapterSpec:
    """Everything the book, the commands and the tests need to know about one chapter.

    Attributes:
        id: the chapter id (profile section, ``fetal book --only``, ``build/results/<id>/``).
        number: its place in the book; the notebook is ``notebooks/NN_*.py``.
        title: the page's title.
        knobs: its settings, in the order of the notebook's parameters cell.
        datasets: the datasets it reads (``data_manifests/<name>.yaml``).
        models: the files it writes under ``build/models/``.
        needs: other chapters whose models it uses (a declared dependency between chapters).
        headlines: the ``metrics.json`` paths of its headline figures.
        decisions: the settings its deployed models rest on, and how each was decided.
    """

    id: str
    number: int
    title: str
    knobs: tuple[Knob, ...]
    datasets: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    headlines: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [k.name for k in self.knobs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"chapter {self.id}: knobs declared twice: {', '.join(dupes)}")

    def knob_names(self) -> list[str]:
        """The knobs' names, in declaration order."""
        return [k.name for k in self.knobs]

    def knob(self, name: str) -> Knob:
        """The knob called ``name`` (KeyError naming the known ones)."""
        for k in self.knobs:
            if k.name == name:
                return k
        raise KeyError(f"unknown {self.id} setting {name!r}; known: {', '.join(sorted(self.knob_names()))}")

    def typed(self, settings: Mapping[str, Any], *names: str) -> dict[str, Any]:
        """``{name: settings[name]}`` for each of ``names``, converted to its knob's declared type
        (``int(...)``, ``float(...)``, ``bool(...)``, ``str(...)``): the keyword arguments of a
        training configuration whose fields are named as the knobs."""
        return {name: self.knob(name).type(settings[name]) for name in names}
