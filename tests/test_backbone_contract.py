"""One backbone contract: outside `jaxseg.models.backbones` no code names a backbone (or its family, or its
family's module) and none asks which model it has; models ask the registry entry for strides, normalisation,
weights and the like."""

import ast

import jax
import numpy as np
import pytest
from conftest import REPO

from jaxseg import models
from jaxseg.models import backbones

PACKAGE = REPO / "jaxseg"
# Files that hold names as data, each for a reason.
ALLOWED = {
    "config/defaults.py": "the default config's encoder",
    "config/upgrade.py": "what configs and checkpoints of earlier formats recorded",
    "models/__init__.py": "model names of earlier releases, which named their MobileNetV2 encoder",
    "models/keras_models.py": "ports of the Keras tutorial's models, whose encoder is MobileNetV2 by definition",
}
FAMILY_MODULES = {entry.module.__module__ for entry in backbones.BACKBONES.values()}


def _violations(path):
  names = set(backbones.BACKBONES) | {e.family for e in backbones.BACKBONES.values()}
  model_names = set(models.MODELS) | set(models.LEGACY_NAMES)
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Constant) and node.value in names:
      found.append(f"names backbone {node.value!r} (line {node.lineno})")
    if isinstance(node, ast.Compare):
      for c in [node.left, *node.comparators]:
        if isinstance(c, ast.Constant) and c.value in model_names:
          found.append(f"asks whether the model is {c.value!r} (line {node.lineno})")
    if isinstance(node, ast.ImportFrom) and node.module:
      imported = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
      found += [f"imports {m} (line {node.lineno})" for m in imported if m in FAMILY_MODULES]
  return found


def test_outside_the_backbones_no_code_names_a_backbone_or_asks_which_model_it_has():
  found = {}
  for path in PACKAGE.rglob("*.py"):
    rel = path.relative_to(PACKAGE).as_posix()
    if rel.startswith("models/backbones/") or rel in ALLOWED:
      continue
    if v := _violations(path):
      found[rel] = v
  assert not found, found


def test_the_grep_finds_what_it_looks_for(tmp_path):
  # The check itself can fail: each kind of reference it refuses, in a file of its own.
  bad = tmp_path / "bad.py"
  bad.write_text('import x\nfrom jaxseg.models.backbones import mit\nif name == "segformer":\n  b = "mobilenet_v2"\n')
  assert len(_violations(bad)) == 3


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_every_entry_declares_what_its_module_returns(name):
  entry = backbones.BACKBONES[name]
  module = backbones.create(name)
  out = jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))[0])
  if entry.tokens:
    assert entry.strides == (entry.arch["patch_size"],) and "output" in out
  else:
    assert tuple(sorted(out)) == entry.strides  # the strides it declares, and no others
    assert {s: out[s].shape[1] for s in out} == {s: 64 // s for s in out}
  assert backbones.channels(name) == ({entry.strides[0]: out["output"].shape[-1]} if entry.tokens
                                      else {s: f.shape[-1] for s, f in out.items()})
  scale, offset = (np.asarray(v) for v in entry.input_transform)
  assert scale.shape == offset.shape == (3,) and np.all(scale > 0)
  assert np.all(np.abs(offset) < 3) and np.all(np.abs(255 * scale + offset) < 3)  # [0, 255] -> about unit scale
  # Weights: from one kind of source; every backbone takes "none".
  assert not (entry.keras_file and entry.preset)
  assert backbones.pretrained(name, "none", (64, 64)) == (None, None, "")
  if not entry.keras_file and not entry.preset:  # "imagenet" where keras-hub has none: one line
    with pytest.raises(backbones.PortError, match=f"keras-hub has no ImageNet preset of {name}"):
      backbones.weights_source(name, "imagenet")
