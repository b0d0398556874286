"""Shared test setup: quiet TensorFlow, Keras on its TensorFlow backend, paths to ../shared."""

import os
import pathlib
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# XLA's persistent compilation cache, shared with subprocesses: the suite compiles the same tiny model many
# times (each end-to-end run, each fresh process); cached executables cut that to seconds. Only speed.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxseg_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The suite's programs are tiny: compiling them is most of its time, running them little. LLVM's optimisations
# off cut XLA:CPU's compile by about 3x (the same HLO; results differ from the optimised build's in the last
# bits, and every comparison within the suite runs under the same flags). Subprocesses inherit it.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PETS_MINI = REPO.parent / "shared" / "data" / "pets-mini"
CAMVID = REPO.parent / "shared" / "data" / "camvid"
IMAGENET_H5 = REPO.parent / "shared" / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture
def pets_mini() -> pathlib.Path:
  """The 20-photo Oxford-IIIT Pet slice; skips the test where ../shared is absent."""
  if not (PETS_MINI / "annotations" / "trainval.txt").is_file():
    pytest.skip(f"{PETS_MINI} is absent")
  return PETS_MINI


@pytest.fixture
def camvid() -> pathlib.Path:
  """The CamVid train/val frames (SegNet layout); skips the test where ../shared is absent."""
  if not (CAMVID / "train.txt").is_file():
    pytest.skip(f"{CAMVID} is absent")
  return CAMVID


@pytest.fixture
def imagenet_h5() -> pathlib.Path:
  """The real ImageNet MobileNetV2 file as keras.applications downloads it (Keras 2 layout); skips where
  ../shared is absent."""
  if not IMAGENET_H5.is_file():
    pytest.skip(f"{IMAGENET_H5} is absent")
  return IMAGENET_H5


@pytest.fixture(scope="session")
def learned(tmp_path_factory):
  """(config, workdir) of a tiny run trained until its predictions depend on the input (10 checkpoints)."""
  import tiny  # pylint: disable=g-import-not-at-top

  from jaxseg.training import loop  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("learned")
  config = tiny.learning_config(keep_checkpoints=2)
  loop.train_and_evaluate(config, str(workdir))
  return config, workdir


@pytest.fixture(autouse=True)
def _fresh_split_cache():
  """Each test loads its data anew (tfds mock data of one test must not serve another)."""
  from jaxseg.data import splits  # pylint: disable=g-import-not-at-top
  splits.clear_memory_cache()
  yield


@pytest.hookimpl(tryfirst=True)  # pytest-xdist reads the marks in a hook that would otherwise run first
def pytest_collection_modifyitems(items):
  """Tests sharing a fixture that trains or builds something (a module- or session-scoped one) run on one
  pytest-xdist worker (`--dist loadgroup`), so that it is built once, not once per worker; the longest tests
  start first, so that the other worker takes the rest meanwhile."""
  for item in items:
    for name in item.fixturenames:
      fixture = item._fixtureinfo.name2fixturedefs.get(name)  # pylint: disable=protected-access
      if fixture and fixture[-1].scope in ("module", "session") and name not in ("tmp_path_factory",):
        param = getattr(item, "callspec", None) and item.callspec.params.get(name)
        module = item.module.__name__ if fixture[-1].scope == "module" else ""
        item.add_marker(pytest.mark.xdist_group(f"{name}:{module}:{param or ''}"))
        break
  first = ("two_processes", "sigkill", "camvid_bench")
  items.sort(key=lambda item: not any(word in item.name for word in first))
