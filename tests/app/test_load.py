"""Load: 20 ultrasound classifications and 4 brain-age predictions sent at once to `fetal app` on
127.0.0.1 (the tiny models), from a bounded client pool (gradio_client, one thread per request).

Every answer must be the library's own for its file; none may fail. The 95th-percentile latency of
each kind and the server's peak resident memory are printed (run with ``-s`` to see them) and
written to ``app_load.json`` under the test's tmp dir. The test process itself runs under the
network guard while the client works, so the client reaches no host but this one either.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

N_CLASSIFY = 20
N_BRAIN_AGE = 4
PLANES_LABEL = "Standard plane (abdomen, brain, femur, thorax)"


def p95(values: list[float]) -> float:
    """The 95th percentile (linear interpolation, numpy's default)."""
    return float(np.percentile(np.asarray(values, float), 95))


def test_concurrent_classification_and_brain_age(app_server, real_dataset, brain_age_subject, tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from fetal_lib.brain_age.predict import load_predictor
    from fetal_lib.us.classifier import UsClassifier

    from .netguard import install

    images = sorted((real_dataset("fetal_planes") / "images").glob("*"))[:N_CLASSIFY]
    assert len(images) == N_CLASSIFY
    classifier = UsClassifier.load(app_server.models_dir / "us_planes.keras", "planes")
    expected_rows, errors = classifier.predict_paths(images)
    assert errors == []
    expected_age = load_predictor(app_server.models_dir / "brain_age")(*brain_age_subject)

    import huggingface_hub.constants

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read when it was imported
    netlog = tmp_path / "client_netguard.log"
    uninstall = install(netlog)
    try:
        from gradio_client import Client, handle_file

        client = Client(app_server.url, verbose=False, download_files=False, analytics_enabled=False, max_workers=N_CLASSIFY + N_BRAIN_AGE)

        def classify(path: Path):
            start = time.perf_counter()
            out = client.predict(handle_file(str(path)), PLANES_LABEL, api_name="/classify")
            return time.perf_counter() - start, out

        def brain_age(_: int):
            start = time.perf_counter()
            out = client.predict(handle_file(str(brain_age_subject[0])), handle_file(str(brain_age_subject[1])), api_name="/brain_age")
            return time.perf_counter() - start, out

        wall = time.perf_counter()
        with ThreadPoolExecutor(max_workers=N_CLASSIFY + N_BRAIN_AGE) as pool:  # the bound: one thread per request
            ba_futures = [pool.submit(brain_age, k) for k in range(N_BRAIN_AGE)]
            us_futures = [pool.submit(classify, p) for p in images]
            us = [f.result() for f in us_futures]
            ba = [f.result() for f in ba_futures]
        wall = time.perf_counter() - wall
    finally:
        uninstall()
    assert not netlog.exists() or netlog.read_text() == "", f"the client tried to reach other hosts: {netlog.read_text()}"

    for (_, out), row in zip(us, expected_rows):
        markdown, label = out[0], out[1]
        assert markdown.startswith(f"### {row['predicted']} ("), markdown
        confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
        for cls, col in zip(classifier.classes, classifier.probability_columns):
            assert confidences[cls] == pytest.approx(row[col], abs=1e-6)
    for _, out in ba:
        assert out[0].startswith(f"### Predicted brain age {expected_age['predicted_age_years']:.2f} years"), out[0]
        assert f"| CSF | {expected_age['csf_ml']:.2f} mL |" in out[0]

    figures = {"classify_requests": N_CLASSIFY, "brain_age_requests": N_BRAIN_AGE, "wall_s": round(wall, 2),
               "classify_p95_s": round(p95([t for t, _ in us]), 3), "classify_median_s": round(float(np.median([t for t, _ in us])), 3),
               "brain_age_p95_s": round(p95([t for t, _ in ba]), 3), "brain_age_median_s": round(float(np.median([t for t, _ in ba])), 3),
               "server_peak_rss_mib": round(app_server.peak_rss_mb(), 1)}
    (tmp_path / "app_load.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("\nfetal app load:", json.dumps(figures))
    assert all(math.isfinite(v) for v in figures.values())
    uploaded = {p.name for p in images} | {p.name for p in brain_age_subject}
    left = [p for p in app_server.uploaded_files() if p.name in uploaded]
    assert not left, f"uploads not deleted after their requests: {left}"
