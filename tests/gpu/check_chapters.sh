#!/usr/bin/env bash
# GPU check of the chapters as the book runs them (issue 51): `fetal book --no-build`, i.e. papermill executing
# each chapter's notebook with the `full` profile, shortened with --set to fit one device command, on the machine
# of ../shared/gpu/README.md (Keras on its torch backend there: no TensorFlow).
# Here, from the project root, for chapters 1-3:  bash ../shared/gpu/prepare.sh 200 --notebooks --planes 100
#   and chapter 5's torch part:  .venv/bin/python tests/gpu/brain_age_segmenter.py prepare .gpu/brain_age.npz --data-dir ../shared/data
# There (the device tool: carry .gpu), from the project root:  bash tests/gpu/check_chapters.sh hc18,us_classification,brain_age
# (about 420 s), then seg_benchmark in a command of its own; the logs have a line per section (no terminal there).
# Steps: a chapter id (fetal book --no-build), brain_age (chapter 5's segmenter and deployed ensemble on CUDA,
# tests/gpu/brain_age_segmenter.py), doctor (fetal doctor --profile full).
# Chapter 4 reads its NIfTI volumes with SimpleITK, which the GPU machine lacks and is too large to carry: prepare them
# here and carry the file (20 MiB for the 31 atlases on the full grid), in a command of its own (with HC18 it is too large):
#   bash ../shared/gpu/prepare.sh 0 --notebooks && .venv/bin/fetal ga prepare-volumes --profile full -o .gpu/ga_volumes.npz
#   there: bash tests/gpu/check_chapters.sh fetal_mri_ga
# What comes back under $OUT: summary.txt, nvidia-smi.txt, chapters.tgz (chapters/NN_slug.ipynb and results/<id>/,
# the layout `fetal book --import-executed DIR` renders into the site here; partial/: a cut-off chapter's cells so far)
# and logs.tgz. Not run by CI (no GPU).
set -u
OUT=${OUT:-/tmp/gpu_check}
CHAPTERS=${1:-hc18,us_classification,brain_age}
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
  [hc18]="--set second_epochs=8 --set audit_epochs=3"
  [seg_benchmark]="--set epochs=10 --set ddim_steps=5 --set diffusion_samples=2"
  [us_classification]="--set epochs=1"
  [fetal_mri_ga]="--set epochs=3 --set samples_per_volume=8 --set volumes_file=.gpu/ga_volumes.npz"
)
# Seconds per step, from the H200 run of 2026-11-28 (68e6ace): hc18 176 s, us_classification 178 s at one epoch (its
# twelve Keras-on-torch trainings cost about 8 s each to start; three epochs did not fit 150 s), brain_age 26 s;
# seg_benchmark did not finish in 225 s at 10 epochs: it needs a command of its own.
declare -A LIMIT=([hc18]=200 [seg_benchmark]=540 [us_classification]=200 [fetal_mri_ga]=400 [brain_age]=60 [doctor]=120)
pack() {  # after every step, so that a command cut short still brings back what ran
  rm -rf /tmp/pack && mkdir -p /tmp/pack/chapters
  cp book/chapters/*.ipynb book/chapters/*.py /tmp/pack/chapters/ 2>/dev/null
  cp -r "$FETAL_BUILD_DIR/results" /tmp/pack/ 2>/dev/null
  cp "$FETAL_BUILD_DIR"/logs/* /tmp/logs/ 2>/dev/null
  # a chapter cut off by `timeout` leaves papermill's output notebook, saved after every cell, in its temporary folder:
  # the cells that finished, each with its duration (metadata.papermill.duration)
  mkdir -p /tmp/pack/partial && cp /tmp/fetal-*/*.out.ipynb /tmp/pack/partial/ 2>/dev/null
  tar czf "$OUT/chapters.tgz" -C /tmp/pack chapters partial $( [ -d /tmp/pack/results ] && echo results )
  tar czf "$OUT/logs.tgz" -C /tmp logs
}
for ch in ${CHAPTERS//,/ }; do
  s=$(date +%s)
  case "$ch" in
    brain_age)  # chapter 5's torch part (SimpleITK is not there): .gpu/brain_age.npz, preprocessed here beforehand
      timeout "${LIMIT[$ch]}" python3 tests/gpu/brain_age_segmenter.py train .gpu/brain_age.npz --profile full --epochs 3 \
        > "/tmp/logs/$ch.txt" 2>&1
      rc=$?; stamp "$ch segmenter + deployed ensemble rc=$rc in $(( $(date +%s) - s )) s: $(grep -h 'trained_on\|loaded_on\|_s_per_subject' "/tmp/logs/$ch.txt" | tr -d ' \n')" ;;
    doctor)  # the full profile's chapter times predicted from the rates measured on this GPU
      timeout "${LIMIT[$ch]}" python3 -m fetal_lib.cli doctor --profile full --data-dir .gpu/data > "/tmp/logs/$ch.txt" 2>&1
      rc=$?; cp "/tmp/logs/$ch.txt" "$OUT/doctor_full.txt"; stamp "$ch --profile full rc=$rc in $(( $(date +%s) - s )) s" ;;
    *)
      # shellcheck disable=SC2086
      timeout "${LIMIT[$ch]:-300}" python3 -m fetal_lib.cli book --profile full --only "$ch" --data-dir .gpu/data --force --no-build \
        ${SETS[$ch]:-} > "/tmp/logs/$ch.txt" 2>&1
      rc=$?
      stamp "$ch rc=$rc in $(( $(date +%s) - s )) s: $(grep -h 'wall time\|real (\|PHANTOM\|rror' "/tmp/logs/$ch.txt" | tail -2 | tr '\n' ' ')" ;;
  esac
  pack
done
stamp "done: $(du -h "$OUT/chapters.tgz" | cut -f1) of executed chapters"
