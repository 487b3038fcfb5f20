#!/usr/bin/env bash
# GPU check of the chapters as the book runs them (issue 51): `fetal book --no-build`, i.e. papermill executing
# each chapter's notebook with the `full` profile, shortened with --set to fit one device command, on the machine
# of ../shared/gpu/README.md (Keras on its torch backend there: no TensorFlow).
# Here, from the project root, for chapters 1-3:  bash ../shared/gpu/prepare.sh 120 --notebooks --planes 120
#                           for chapter 4:        bash ../shared/gpu/prepare.sh 0 --notebooks --atlases gholipour
# There (the device tool: carry .gpu), from the project root:  bash tests/gpu/check_chapters.sh hc18,seg_benchmark,us_classification
# What comes back under $OUT: summary.txt, nvidia-smi.txt, chapters.tgz (chapters/NN_slug.ipynb and results/<id>/,
# the layout `fetal book --import-executed DIR` renders into the site here) and logs.tgz. Not run by CI (no GPU).
set -u
OUT=${OUT:-/tmp/gpu_check}
CHAPTERS=${1:-hc18,seg_benchmark,us_classification}
mkdir -p "$OUT" /tmp/logs /tmp/pack/chapters
source .gpu/env.sh
export KERAS_BACKEND=torch
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv > "$OUT/nvidia-smi.txt" 2>&1
python3 -c "import torch, keras; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'keras', keras.__version__, keras.backend.backend())" \
  >> "$OUT/nvidia-smi.txt" 2>&1
# prepare.sh's FETAL_PLANES_DB subset copies the whole Roboflow index, which the loader refuses (an image listed but
# absent): keep the index rows of the images that came (the subset is whole patients).
python3 - <<'PY'
import csv, pathlib
root = pathlib.Path(".gpu/data/fetal_planes")
index = root / "roboflow_export_index.csv"
if index.is_file():
    rows = list(csv.DictReader(index.open(newline="")))
    kept = [r for r in rows if (root / "images" / r["image"]).is_file()]
    with index.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        w.writeheader(); w.writerows(kept)
    print(f"FETAL_PLANES_DB index: {len(kept)} of {len(rows)} rows kept (the subset's images)")
PY
# The full profile, shortened: fewer epochs (and diffusion sampling steps); everything else as the book runs it there.
declare -A SETS=(
  [hc18]="--set second_epochs=10 --set audit_epochs=5"
  [seg_benchmark]="--set epochs=3 --set ddim_steps=5 --set diffusion_samples=2"
  [us_classification]="--set epochs=2"
  [fetal_mri_ga]="--set epochs=3 --set samples_per_volume=8"
)
declare -A LIMIT=([hc18]=200 [seg_benchmark]=200 [us_classification]=150 [fetal_mri_ga]=400)
for ch in ${CHAPTERS//,/ }; do
  s=$(date +%s)
  # shellcheck disable=SC2086
  timeout "${LIMIT[$ch]:-300}" python3 -m fetal_lib.cli book --profile full --only "$ch" --data-dir .gpu/data --force --no-build \
    --no-progress ${SETS[$ch]:-} > "/tmp/logs/$ch.txt" 2>&1
  rc=$?
  stamp "$ch rc=$rc in $(( $(date +%s) - s )) s: $(grep -h 'wall time\|real (\|PHANTOM\|error' "/tmp/logs/$ch.txt" | tail -2 | tr '\n' ' ')"
done
cp book/chapters/*.ipynb book/chapters/*.py /tmp/pack/chapters/ 2>/dev/null
cp -r "$FETAL_BUILD_DIR/results" /tmp/pack/ 2>/dev/null
cp "$FETAL_BUILD_DIR"/logs/* /tmp/logs/ 2>/dev/null
tar czf "$OUT/chapters.tgz" -C /tmp/pack chapters results
tar czf "$OUT/logs.tgz" -C /tmp logs
stamp "done: $(du -h "$OUT/chapters.tgz" | cut -f1) of executed chapters"
