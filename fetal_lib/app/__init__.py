"""``fetal app``: one local web page for every trained model (Gradio), served on 127.0.0.1 only.

One tab per task; a tab whose model is missing says which command trains it:

* :mod:`~fetal_lib.app.tab_hc`: head circumference (chapter 1's U-Net, chapter 2's winner when present);
* :mod:`~fetal_lib.app.tab_us`: ultrasound classification (chapter 3: planes, brain planes, anomaly);
* :mod:`~fetal_lib.app.tab_ga`: gestational age from fetal brain MRI (chapter 4);
* :mod:`~fetal_lib.app.tab_brain_age`: brain age from adult T1 MRI (chapter 5).

Each tab module holds a ``load_models(models_dir)`` (run once at start), a pure ``predict`` function
(no Gradio: the unit tests call it) and ``build(...)``, which lays the tab out and wires its events.
The shared parts: :mod:`~fetal_lib.app.settings` (options, offline environment),
:mod:`~fetal_lib.app.uploads` (the app's own temporary folder), :mod:`~fetal_lib.app.cards` (what
every result says about its model), :mod:`~fetal_lib.app.slots` (a loaded model or why it is absent),
:mod:`~fetal_lib.app.render` (pictures), :mod:`~fetal_lib.app.blocks` (the page) and
:mod:`~fetal_lib.app.server` (launch). Gradio, TensorFlow and PyTorch are imported only when the
app starts or a model loads.
"""
