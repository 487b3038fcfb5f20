"""Figures shared by every chapter (matplotlib; each function returns a Figure).

* :mod:`.curves`: training curves of one or several runs.
* :mod:`.agreement`: Bland-Altman plots (one panel per quantity).
* :mod:`.classification`: ROC curves with bootstrap AUC intervals, confusion matrices,
  reliability diagram with the expected calibration error.
* :mod:`.explain`: Grad-CAM overlays in a grid.

Chapter-specific figures stay in the chapter's package (``fetal_lib.hc.figures``, ...).
"""
