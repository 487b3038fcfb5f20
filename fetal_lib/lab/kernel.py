"""The Jupyter kernel of ``fetal lab``: ipykernel, started in the repository root.

JupyterLab starts a notebook's kernel in the notebook's folder (``notebooks/``); the chapters'
relative paths (``build/results/<chapter>``, ``./data``) mean the repository root, as when
``fetal book`` runs them. ``python -m fetal_lib.lab.kernel -f CONNECTION_FILE`` moves there first,
then runs ipykernel exactly as ``python -m ipykernel_launcher`` does.
"""

from __future__ import annotations

import os
import sys

from fetal_lib.paths import REPO_ROOT


def main() -> None:
    """Change to the repository root and start ipykernel with this process's arguments."""
    os.chdir(REPO_ROOT)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)  # as ipykernel_launcher: the notebook's folder is not an import root
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
