"""What each dataset of chapter 0 is on this machine: real or phantom, verified status, access, licence."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from fetal_lib.data.manifests import load_manifest
from fetal_lib.overview.figures import status_table
from fetal_lib.results import data_status


def run_status(sources: Mapping[str, Any], report: Any | None) -> dict[str, dict[str, Any]]:
    """:func:`fetal_lib.results.data_status` of ``sources``, with the real datasets' status and problem
    count taken from ``report`` (a ``fetal_lib.data.verify.VerifyReport``, None when all are phantoms)."""
    status = data_status(sources)
    for name, src in sources.items():
        if not src.is_phantom and report is not None:
            status[name]["status"] = report[name].describe_status()
            status[name]["problems"] = len(report[name].problems)
    return status


def table(sources: Mapping[str, Any], report: Any | None) -> pd.DataFrame:
    """One row per dataset (:func:`fetal_lib.overview.figures.status_table`) with its manifest's access kind and licence."""
    out = status_table(sources, report)
    manifests = {n: load_manifest(n) for n in out["dataset"]}
    out["access"] = [str((manifests[n].get("access") or {}).get("kind", "")) for n in out["dataset"]]
    out["licence"] = [str(manifests[n].get("licence", "")).strip() for n in out["dataset"]]
    return out


def problems_markdown(report: Any | None) -> str | None:
    """The problems ``fetal data verify`` found, as a Markdown list; None when there are none."""
    if report is None or not report.problems:
        return None
    return "**Problems found by verify:**\n\n" + "\n".join(f"- `{p}`" for p in report.problems)


def metrics(sources: Mapping[str, Any], report: Any | None) -> dict[str, int]:
    """Datasets real and phantom, and the number of problems verify found in the real ones."""
    n_real = sum(not src.is_phantom for src in sources.values())
    return {"n_datasets_real": n_real, "n_datasets_phantom": len(sources) - n_real,
            "verify_problems": 0 if report is None else len(report.problems)}
