#!/usr/bin/env bash
# Set up hcal in ./.venv with the exact versions of constraints.txt (safe to re-run).
#   bash setup.sh         # the package and its command-line tool, .venv/bin/hcal
#   bash setup.sh --dev   # also what the tests need
set -euo pipefail
cd "$(dirname "$0")"

extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || { echo "setup.sh: needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".${extra}"

# The default dataset: Debian/Ubuntu ship Fashion-MNIST as a package. Elsewhere hcal downloads it
# on first use (torchvision), or reads it from --data-dir.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n"; } || true
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
      || echo "setup.sh: note: could not install dataset-fashion-mnist; hcal will download Fashion-MNIST on first use"
  else
    echo "setup.sh: note: not root; 'apt-get install dataset-fashion-mnist' would give hcal Fashion-MNIST offline"
  fi
fi
echo "setup.sh: ready ($(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
