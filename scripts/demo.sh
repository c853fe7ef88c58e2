#!/usr/bin/env bash
# The demo behind `make demo`: simulate micrographs, pick, evaluate, draw.
set -euo pipefail
OUT=${1:-demo_output}
FP=${FEWPICK:-.venv/bin/fewpick}
mkdir -p "$OUT"
echo "== simulating 3 micrographs (1024 px, particles 48 px across) into $OUT/data"
$FP simulate micrographs --out "$OUT/data" --count 3 --size 1024 --seed 1 --preset simple --snr 0.005
echo "== picking with the difference-of-Gaussians picker"
$FP pick "$OUT/data" --method dog --particle-diameter 48 --out "$OUT/picks.star"
$FP pick "$OUT/data" --method dog --particle-diameter 48 --threshold -1e9 --out "$OUT/all_peaks.star"
echo "== evaluating against the exact truth"
$FP evaluate "$OUT/picks.star" "$OUT/data" --radius 24 --json "$OUT/metrics.json"
$FP evaluate "$OUT/all_peaks.star" "$OUT/data" --radius 24 --json "$OUT/metrics_all_peaks.json" --plot "$OUT/pr_curve.png"
$FP overlay "$OUT/data/sim_000.mrc" --picks "$OUT/picks.star" --truth "$OUT/data/sim_000_truth.star" \
    --particle-diameter 48 --out "$OUT/overlay.png"
echo "== done: $OUT/picks.star, $OUT/metrics.json, $OUT/pr_curve.png, $OUT/overlay.png"
