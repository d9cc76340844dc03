# Sourced by scripts/main.sh and scripts/test.sh: create .venv and install resfx once.
# torch 2.14.1 / torchvision 0.29.1 come from this machine's pip (a constraint file caps them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.resfx-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/python -m pip install --quiet -e ".[test,docs]"
    touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export MPLBACKEND="${MPLBACKEND:-Agg}"
