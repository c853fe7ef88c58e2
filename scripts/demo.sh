#!/usr/bin/env bash
# The demo behind `make demo`: simulate realistic micrographs, train the positive-unlabeled picker from 20
# labeled particles, pick a held-out micrograph, evaluate against the exact truth, draw the result.
set -euo pipefail
OUT=${1:-demo_output}
FP=${FEWPICK:-.venv/bin/fewpick}
# Target: CCT/TRiC chaperonin (PDB 4V8R), 183 Å across (152 px at 1.2 Å/px); ribosome, mTOR, RuvAB and
# enolase are distractors.
mkdir -p "$OUT"
echo "== simulating realistic micrographs (2048² px, 1.2 Å/px, 5 species): 2 for training, 1 held out"
$FP simulate micrographs --out "$OUT/train" --count 2 --size 2048 --seed 7 --preset realistic
$FP simulate micrographs --out "$OUT/test" --count 1 --size 2048 --seed 8 --preset realistic
echo "== labels: 20 CCT particles drawn from the training micrographs' truth"
$FP convert "$OUT/train" "$OUT/labels.star" --where species=cct --sample 20 --seed 0
$FP convert "$OUT/test" "$OUT/test_truth.star" --where species=cct
echo "== training the PU picker (GE-binomial; about 15 CCT expected per micrograph)"
$FP train "$OUT/train" --labels "$OUT/labels.star" --particle-diameter 183A --expected-particles 15 \
    --steps 600 --out "$OUT/picker.pt"
echo "== picking the held-out micrograph"
$FP pick "$OUT/test" --model "$OUT/picker.pt" --out "$OUT/picks.star"
$FP pick "$OUT/test" --model "$OUT/picker.pt" --threshold -1e9 --out "$OUT/all_peaks.star"
echo "== evaluating against the exact truth (CCT only; matching radius 76 px = the particle radius)"
$FP evaluate "$OUT/picks.star" "$OUT/test_truth.star" --radius 76 --json "$OUT/metrics.json"
# the curve over every peak, with the point the default threshold gave (the lowest score among the picks)
CUT=$("$(dirname "$FP")/python" -c "from fewpick.io import read_picks; print(read_picks('$OUT/picks.star').score.min())")
$FP evaluate "$OUT/all_peaks.star" "$OUT/test_truth.star" --radius 76 --json "$OUT/metrics_all_peaks.json" \
    --threshold "$CUT" --plot "$OUT/pr_curve.png"
$FP overlay "$OUT/test/mic_000.mrc" --picks "$OUT/picks.star" --truth "$OUT/test_truth.star" \
    --particle-diameter 152 --out "$OUT/overlay.png"
echo "== done: $OUT/picks.star, $OUT/metrics.json, $OUT/pr_curve.png, $OUT/overlay.png, $OUT/picker.pt"
