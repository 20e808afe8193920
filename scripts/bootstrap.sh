#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent).
# Usage: scripts/bootstrap.sh   (called by `make demo` and `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.diffbio-installed
inputs="pyproject.toml constraints.txt scripts/bootstrap.sh"
if [ -f "$STAMP" ]; then
  fresh=1
  for f in $inputs; do [ "$f" -nt "$STAMP" ] && fresh=0; done
  [ "$fresh" = 1 ] && exit 0
fi
echo "diffbio: setting up $VENV (first run takes a few minutes) ..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch first, pinned (a CPU build is picked where the machine offers one), then the rest.
$PIP install -c constraints.txt "torch" "numpy" 2>&1 | grep -v '^WARNING: Location' || true
$PIP install -c constraints.txt -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
# theseus-ai needs torch at build time and its scikit-sparse dependency is optional.
$PIP install --no-build-isolation --no-deps theseus-ai==0.2.3 torchlie==0.1.0 torchkin==0.1.1 \
  urdf_parser_py==0.0.4 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c "import torch, warp, opensim, pinocchio, theseus, cvxpy, diffbio" 2>/dev/null \
  || { echo "diffbio: environment check failed" >&2; "$VENV/bin/python" -c "import torch, warp, opensim, pinocchio, theseus, cvxpy, diffbio"; exit 1; }
touch "$STAMP"
