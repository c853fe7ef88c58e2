#!/usr/bin/env bash
# Every GPU check in one short run, for a machine with a CUDA GPU and PyTorch but no network.
#
#   bash bench/gpu_check.sh [WHEELS] [DATA] [OUT]
#
# WHEELS: a folder of wheels for what that machine's Python lacks (mrcfile, starfile, umap-learn, dask, ...;
# fetch them here with `pip download --python-version X.Y --only-binary=:all: ...`); DATA: the real sets
# (the layout of $FEWPICK_REAL_DATA, see bench/real2d.py); OUT: where the results and the log go.
# It installs fewpick without its dependencies, runs the CUDA tests, trains and picks the CryoPPP sets with
# the default device (auto: the GPU) through the command line as bench/real2d.py does, and times PU picking of a
# 4096² micrograph on the GPU (bench/pick_speed.py). Each step has its own time limit so the results of the
# steps before it come back.
set -u
WHEELS=${1:-gpu_wheels}
DATA=${2:-gpu_data}
OUT=${3:-${OUT:-bench/results}}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  $PY -m pip install -q --no-index --find-links "$WHEELS" mrcfile starfile umap-learn "dask[distributed]" \
      imodmodel cryosparc-tools 2>&1 | tail -3
  $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -3
  echo "== CUDA tests"
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -15
  echo "== real sets, default device"
  FEWPICK_REAL_DATA="$DATA" timeout "${REAL2D_S:-240}" $PY bench/real2d.py --tools pu fewshot --seeds 0 \
      --sets 10059 10947 --labels 15 all --out real2d_gpu 2>&1 | tail -12
  cp bench/results/real2d_gpu.* "$OUT"/ 2>/dev/null
  echo "== pick speed on the GPU"
  FEWPICK_REAL_DATA="$DATA" timeout 90 $PY bench/pick_speed.py --device cuda --models real2d_gpu \
      --out pick_speed_gpu 2>&1 | tail -14
  cp bench/results/pick_speed_gpu.* "$OUT"/ 2>/dev/null
} 2>&1 | tee "$OUT/gpu_check.log"
