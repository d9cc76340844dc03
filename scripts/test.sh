#!/usr/bin/env bash
# Set up the environment if needed, then run every check CI runs.
source "$(dirname "$0")/_env.sh"
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy src
python -m pytest "$@"
python -m pytest benchmarks --benchmark-disable -q
