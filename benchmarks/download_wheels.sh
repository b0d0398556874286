#!/usr/bin/env bash
# Wheels that `python -m benchmarks.gpu` needs beyond jax[cuda], flax, optax, orbax-checkpoint and torch, for
# a GPU machine without internet (Python 3.12, x86-64): run on a connected machine in the repository root,
# then copy the repository with its .whl/ over (benchmarks/README.md, "Running it on a GPU machine").
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info; grep -qsx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  ml_collections==1.1.0 keras==3.15.1 namex==0.1.0 optree==0.20.0
ls .whl
