#!/usr/bin/env bash
# GPU check of the Keras chapters (1, 3, 4) on Keras's torch backend, on the machine of ../shared/gpu/README.md
# (no TensorFlow there). Here, from the project root:  bash ../shared/gpu/prepare.sh 280
# There (the device tool: carry .gpu), from the project root:  bash tests/gpu/check_keras.sh
# Logs go to $OUT (default /tmp/gpu_check). Not run by CI: CI has no GPU; `make test`'s torch pass carries
# the backend-neutral tests there.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT" /tmp/m
source .gpu/env.sh
export KERAS_BACKEND=torch
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, keras; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'keras', keras.__version__, keras.backend.backend())" \
  >> "$OUT/nvidia-smi.txt" 2>&1
timeout 150 python3 -m pytest -q -p no:cacheprovider -m "keras_backends and not slow" tests/hc tests/training/test_keras_batches.py \
  tests/networks > "$OUT/pytest_keras.txt" 2>&1
stamp "pytest (keras_backends, not slow: hc, keras_batches, networks) rc=$?: $(tail -1 "$OUT/pytest_keras.txt")"
# Chapter 1's cascade trained on the GPU: the full profile on the 280-image subset, fewer epochs
timeout 300 python3 -m fetal_lib.cli hc train --profile full --data-dir .gpu/data --set epochs=30 --set second_epochs=15 \
  --model /tmp/m/hc18_unet.keras > "$OUT/hc_train.txt" 2>&1
stamp "hc train (full, 30 + 15 epochs) rc=$?: $(grep -h 'second stage:' "$OUT/hc_train.txt" | tail -1)"
imgs=$(ls .gpu/data/hc18/training_set/*HC.png | tail -5)
timeout 60 python3 -m fetal_lib.cli hc measure $imgs --pixel-sizes .gpu/data/hc18/training_set_pixel_size_and_HC.csv \
  --model /tmp/m/hc18_unet.keras --format json --overlay "$OUT/overlays" > "$OUT/hc_measure.json" 2> "$OUT/hc_measure.err"
stamp "hc measure (cascade if deployed) rc=$?"
timeout 90 python3 -m fetal_lib.cli bench hc --model /tmp/m/hc18_unet.keras --profile full --data-dir .gpu/data --train-images 64 --train-steps 20 --n-images 10 \
  > "$OUT/bench_hc.txt" 2>&1; stamp "bench hc rc=$?: $(grep -h 'images/s' "$OUT/bench_hc.txt" | head -2 | tr '\n' ' ')"
cp /tmp/m/*.card.json "$OUT/" 2>/dev/null
stamp "done"
