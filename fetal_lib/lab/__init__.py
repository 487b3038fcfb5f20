"""``fetal lab``: the chapters as live notebooks in JupyterLab (see :mod:`fetal_lib.lab.server`)."""
