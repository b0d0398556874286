"""The package's layering: every jaxseg module imports only modules below it, and harnesses stay outside."""

import ast
import pathlib

from conftest import REPO

# Bottom to top. A module may import only modules listed before it (a package's __init__ counts as the
# package name, e.g. "models").
ORDER = ["runtime.allocator", "errors", "config.defaults", "config.upgrade", "runtime.faults", "runtime.extras",
         "runtime.files", "runtime.precision", "runtime.distributed",
         "ops.common", "ops.pointwise", "ops.dense3x3", "ops.depthwise", "ops.winograd", "ops.winograd_transpose",
         "ops.conv_transpose", "ops.pool", "ops.lovasz", "ops.resize", "ops.norm", "ops.softmax", "ops.strided",
         "ops.dispatch", "ops",
         "models.layers", "models.backbones.strides", "models.backbones.layers", "models.backbones.resnet",
         "models.backbones.mobilenet_v3", "models.backbones.efficientnet", "models.backbones.mit",
         "models.backbones.dinov2", "models.backbones.keras_hub_port", "models.backbones.mobilenet_v2",
         "models.backbones.keras_applications",
         "models.backbones",
         "models.aux_head", "models.base", "models.unet", "models.deeplab", "models.segformer_port", "models.segformer",
         "models.linear", "models.summary", "models.keras_models", "models",
         "data.labels", "data.geometry", "data.images", "data.synthetic", "data.resize_crop", "data.transforms",
         "data.layouts", "data.sources", "data.random_access", "data.streaming",
         "data.dataset_checks", "data.splits", "data.batching", "data.pipeline", "data", "training.losses",
         "training.state", "training.optimizers", "runtime.parallel",
         "inference.forward", "inference.logits",
         "config.checks", "config.files", "viz.charts", "viz.figures", "training.metrics", "training.steps",
         "training.checkpoints", "training.intact", "training.workdir_lock", "training.mid_epoch",
         "training.preemption", "training.metrics_writer", "training.startup", "training.tiled_eval",
         "training.build", "training.store",
         "training.run", "training.loop", "training",
         "inference.predict", "inference.export", "cli.compare", "cli.modes", "cli.main",
         # The role packages' own __init__ modules import nothing.
         "runtime", "config", "viz", "inference", "cli", ""]
PACKAGE = REPO / "jaxseg"


def _name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST) -> set[str]:
  """jaxseg modules a module imports, anywhere in it (lazy imports included)."""
  modules = {_name(p) for p in PACKAGE.rglob("*.py")}
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    for name in names:
      if name.split(".")[0] != "jaxseg":
        continue
      name = name[len("jaxseg."):] if name != "jaxseg" else ""
      while name and name not in modules:  # `from jaxseg.models import UNet` imports the package
        name = name.rpartition(".")[0]
      out.add(name)
  return out


def test_every_module_is_placed_and_imports_only_lower_layers():
  files = sorted(PACKAGE.rglob("*.py"))
  assert sorted(_name(p) for p in files) == sorted(ORDER), "add new modules to ORDER"
  upward = []
  for path in files:
    me = _name(path)
    for other in _imported(ast.parse(path.read_text())):
      if other != me and ORDER.index(other) >= ORDER.index(me):
        upward.append(f"{me} imports {other}")
  assert not upward


def test_the_package_holds_no_benchmark_or_other_framework():
  text = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
  assert "import torch" not in text and "benchmarks" not in text.replace("benchmarks/README.md", "")


def test_the_package_is_grouped_by_role_with_at_most_five_loose_modules():
  loose = sorted(p.name for p in PACKAGE.glob("*.py"))
  assert len(loose) <= 5, loose


def test_no_module_of_the_package_is_over_300_lines():
  long = {_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
  assert not long


def test_kernels_hold_no_flax_and_models_ask_no_model_its_name():
  ops_text = "\n".join(p.read_text() for p in (PACKAGE / "ops").rglob("*.py"))
  assert "flax" not in ops_text
  for path in PACKAGE.rglob("*.py"):
    text = path.read_text()
    assert 'startswith("deeplab' not in text and "isinstance(model, " not in text, path
