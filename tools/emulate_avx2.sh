#!/usr/bin/env bash
# Run a command as if on a 2-core CPU with AVX2 only (no AVX-512, no native bfloat16), from a
# machine that has them (issue 48). Usage: tools/emulate_avx2.sh COMMAND [ARGS...]
#   e.g. tools/emulate_avx2.sh .venv/bin/fetal bench hc --skip-inference
#        tools/emulate_avx2.sh make book DATA_DIR=../shared/data
#
# Calibrated, not assumed: on a 2-core AMD EPYC with AVX-512 BF16, chapter 1's U-Net
# (`fetal bench hc --skip-inference --train-steps 16`) trained at 6.20 images/s under this script,
# against 6.2 measured on a real 2-core EPYC with AVX2 only (float32). Capping the instruction
# set alone (both cores, float32) gave 12.9 images/s: the AVX2-only machine is slower than its
# instruction set, so the script also pins the run to one core (FETAL_EMULATE_CORE, default the
# last one) and the chapters use one thread there (fetal_lib.machine.thread_count).
#
#   ONEDNN_MAX_CPU_ISA=AVX2   oneDNN (TensorFlow's and PyTorch's convolutions) stops at AVX2
#   ATEN_CPU_CAPABILITY=avx2  PyTorch's own kernels stop at AVX2
#   FETAL_CPUINFO             a copy of /proc/cpuinfo without the AVX-512 and AMX flags, so that
#                             precision `auto` resolves to float32 as it would there
set -euo pipefail
if [[ $# -eq 0 ]]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
core="${FETAL_EMULATE_CORE:-$(( $(nproc --all) - 1 ))}"
fake="${TMPDIR:-/tmp}/fetal_cpuinfo_avx2.$$"
trap 'rm -f "$fake"' EXIT
sed -E -e '/^flags/ s/ (avx512[a-z0-9_]*|amx[a-z0-9_]*)//g' \
       -e 's/^(model name[[:space:]]*:.*)$/\1 (emulated: AVX2 only, one core)/' /proc/cpuinfo > "$fake"
export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 FETAL_CPUINFO="$fake"
taskset -c "$core" "$@"
