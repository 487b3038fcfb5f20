"""Executing chapters (jupytext -> papermill) and the results registry."""
