"""The base install on its own: `tests/base_install_check.py` in a fresh process where the extras' packages
(TensorFlow, Keras, keras-hub, PyTorch, TensorBoard) cannot be imported. CI also runs this file in a virtual
environment that has only `pip install .` (and pytest)."""

import os
import subprocess
import sys

import tiny


def test_the_base_install_trains_evaluates_predicts_and_exports_without_any_extra(tmp_path):
  tests = os.path.dirname(os.path.abspath(__file__))
  proc = subprocess.run([sys.executable, os.path.join(tests, "base_install_check.py"), str(tmp_path)],
                        capture_output=True, text=True, timeout=600, cwd=tiny.REPO,
                        env={**os.environ, "PYTHONPATH": f"{tiny.REPO}{os.pathsep}{tests}"})
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "base install: all checks passed"
