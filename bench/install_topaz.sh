#!/usr/bin/env bash
# Install Topaz 0.3.20 for CPU into bench/work/topaz-venv (never into fewpick's own environment).
# Recipe from issue 4: torch first, topaz-em without dependencies, its dependencies by hand, torchvision
# without dependencies, and torchvision's fake-op registrations guarded (the CPU torch has no torchvision ops;
# Topaz only uses rotate/flip).
set -euo pipefail
cd "$(dirname "$0")"
VENV=work/topaz-venv
PY=${PYTHON:-python3}
if [ -x "$VENV/bin/topaz" ] && "$VENV/bin/python" -c "import topaz, torchvision" 2>/dev/null; then
    echo "topaz already installed in $VENV"; exit 0
fi
$PY -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.13.0
"$VENV/bin/pip" install --quiet --no-deps topaz-em==0.3.20
"$VENV/bin/pip" install --quiet tqdm h5py numpy pandas psutil scikit-learn scipy pillow future mrcfile "setuptools<81"
"$VENV/bin/pip" install --quiet --no-deps torchvision==0.28.0
META=$("$VENV/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchvision")
print(pathlib.Path(spec.origin).parent / "_meta_registrations.py")
PY
)
"$VENV/bin/python" - "$META" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
if "_fewpick_guard" not in text:
    # replace each @torch.library.register_fake("torchvision::...") decorator by a guarded one
    text = text.replace("import torch\n", "import torch\nimport torchvision.extension as _fewpick_ext\n"
                        "def _fewpick_guard(name):\n"
                        "    if _fewpick_ext._has_ops():\n"
                        "        return torch.library.register_fake(name)\n"
                        "    return lambda f: f\n", 1)
    text = re.sub(r"@torch\.library\.register_fake\((\"torchvision::[^\"]+\")\)", r"@_fewpick_guard(\1)", text)
    open(path, "w").write(text)
PY
"$VENV/bin/topaz" --help > /dev/null
echo "topaz installed in $VENV"
