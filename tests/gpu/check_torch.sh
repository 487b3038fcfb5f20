#!/usr/bin/env bash
# GPU check of the PyTorch paths (chapters 2 and 5) on the machine of ../shared/gpu/README.md.
# Here, from the project root:
#   bash ../shared/gpu/prepare.sh 280
#   .venv/bin/python tests/gpu/brain_age_segmenter.py prepare .gpu/brain_age.npz --data-dir ../shared/data
# There (the device tool: carry .gpu), from the project root:  bash tests/gpu/check_torch.sh
# Logs go to $OUT (default /tmp/gpu_check). Not run by CI: CI has no GPU; tests/training/test_device.py carries the check there.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT" /tmp/m
source .gpu/env.sh
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$OUT/nvidia-smi.txt" 2>&1
python3 -m fetal_lib.cli doctor --skip-bench > "$OUT/doctor.txt" 2>&1; stamp "doctor rc=$?"
for a in attention_unet unext transunet ducknet medsegdiff_v2; do
  timeout 170 python3 -m fetal_lib.cli seg train --arch "$a" --profile full --data-dir .gpu/data --set epochs=10 \
    --model "/tmp/m/$a.pt" > "$OUT/seg_$a.txt" 2>&1
  stamp "seg train $a rc=$?: $(grep -h 'training images/s' "$OUT/seg_$a.txt" | tail -1)"
done
model=$(ls /tmp/m/*.pt 2>/dev/null | head -1)
if [ -z "$model" ]; then  # none above the floor after 10 epochs: train the fastest one longer
  timeout 120 python3 -m fetal_lib.cli seg train --arch attention_unet --profile full --data-dir .gpu/data --set epochs=40 \
    --model /tmp/m/attention_unet.pt > "$OUT/seg_attention_unet_40.txt" 2>&1
  stamp "seg train attention_unet 40 epochs rc=$?: $(grep -h 'training images/s' "$OUT/seg_attention_unet_40.txt" | tail -1)"
  model=$(ls /tmp/m/*.pt 2>/dev/null | head -1)
fi
if [ -n "$model" ]; then
  arch=$(basename "$model" .pt)
  timeout 90 python3 -m fetal_lib.cli seg evaluate --arch "$arch" --model "$model" --profile full --data-dir .gpu/data \
    --device cuda > "$OUT/seg_evaluate.txt" 2>&1; stamp "seg evaluate $arch --device cuda rc=$?"
  imgs=$(ls .gpu/data/hc18/training_set/*HC.png | head -3)
  timeout 60 python3 -m fetal_lib.cli hc measure $imgs --pixel-sizes .gpu/data/hc18/training_set_pixel_size_and_HC.csv \
    --model "$model" --device cuda > "$OUT/hc_measure.txt" 2>&1; stamp "hc measure --model $arch --device cuda rc=$?"
fi
timeout 120 python3 tests/gpu/brain_age_segmenter.py train .gpu/brain_age.npz --profile full --epochs 2 > "$OUT/brain_age.txt" 2>&1
stamp "brain-age segmenter (full profile, 2 epochs, 2 subjects) rc=$?"
timeout 100 python3 -m fetal_lib.cli doctor --profile full --only seg_benchmark,brain_age --data-dir .gpu/data \
  > "$OUT/doctor_full.txt" 2>&1; stamp "doctor --profile full rc=$?"
timeout 100 python3 -m fetal_lib.cli bench seg --profile full --data-dir .gpu/data --train-images 64 --train-steps 20 --n-images 5 \
  > "$OUT/bench_seg.txt" 2>&1; stamp "bench seg rc=$?"
cp /tmp/m/*.card.json "$OUT/" 2>/dev/null
stamp "done"
