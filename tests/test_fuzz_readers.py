"""Property-based tests of every reader of user files: random bytes under image and mask names, zero-byte and
truncated PNG/JPEG, wrong-size masks, list files and colour tables of random text or bytes, non-UTF-8 file
names, a directory named like an image, a symlink loop, and every config field given a value of the wrong
type on the command line. Each is read correctly or refused by an error naming the file or field; none raises
anything else, prints a traceback or hangs."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tiny
from absl import flags
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ml_collections import config_flags
from PIL import Image

from jaxseg import data
from jaxseg.config import checks as config_checks
from jaxseg.data import images, labels, layouts, splits
from jaxseg.errors import DatasetError, UserError

# Reproducible in CI (derandomize), bounded in time; tmp_path is shared by the examples of one test on purpose.
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _encoded(kind: str, h: int, w: int, seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  buf = io.BytesIO()
  Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, kind)
  return buf.getvalue()


def _refused_naming(e: BaseException, path: str) -> None:
  assert isinstance(e, DatasetError), f"{type(e).__name__}: {e}"
  assert str(e).startswith(str(path)) and "\n" not in str(e) and "Traceback" not in str(e), str(e)


def _read_or_refuse(reader, path):
  try:
    out = reader(path)
  except Exception as e:  # pylint: disable=broad-except
    _refused_naming(e, path)
    return None
  return out


@FUZZ
@given(content=st.binary(max_size=2048), ext=st.sampled_from([".png", ".jpg", ".jpeg", ".bmp", ".tif", ".webp"]))
def test_random_bytes_under_an_image_name(tmp_path, content, ext):
  path = str(tmp_path / f"photo{ext}")
  with open(path, "wb") as f:
    f.write(content)
  rgb = _read_or_refuse(images.read_rgb, path)
  assert rgb is None or (rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3)
  mask = _read_or_refuse(labels.read_mask, path)
  assert mask is None or mask.ndim in (2, 3)


@FUZZ
@given(kind=st.sampled_from(["PNG", "JPEG"]), h=st.integers(1, 40), w=st.integers(1, 40),
       keep=st.floats(0.0, 1.0), seed=st.integers(0, 3))
def test_zero_byte_and_truncated_images_and_masks(tmp_path, kind, h, w, keep, seed):
  encoded = _encoded(kind, h, w, seed)
  path = str(tmp_path / f"cut.{kind.lower()}")
  with open(path, "wb") as f:
    f.write(encoded[:int(len(encoded) * keep)])
  rgb = _read_or_refuse(images.read_rgb, path)
  assert rgb is None or rgb.shape == (h, w, 3)  # PIL may fill a JPEG's missing tail: the size stays right
  mask = _read_or_refuse(labels.read_mask, path)
  assert mask is None or mask.shape[:2] == (h, w)


def test_a_directory_named_like_an_image_and_a_symlink_loop(tmp_path):
  (tmp_path / "folder.png").mkdir()
  loop = tmp_path / "loop.png"
  os.symlink(loop, loop)
  for path in (tmp_path / "folder.png", loop):
    for reader in (images.read_rgb, labels.read_mask):
      with pytest.raises(DatasetError) as e:
        reader(str(path))
      _refused_naming(e.value, str(path))


@FUZZ
@given(text=st.text(max_size=300), raw=st.binary(max_size=300), as_bytes=st.booleans())
def test_list_files_of_random_text_or_bytes(tmp_path, text, raw, as_bytes):
  root = tmp_path / "lists"
  root.mkdir(exist_ok=True)
  (root / "a.png").write_bytes(_encoded("PNG", 4, 4, 0))
  with open(root / "train.txt", "wb") as f:
    f.write(raw if as_bytes else text.encode("utf-8", "surrogatepass"))
  try:
    pairs, problems = layouts.list_pairs(str(root), tiny.tiny_config(**{"data.layout": "lists"}), "train")
  except Exception as e:  # pylint: disable=broad-except
    _refused_naming(e, os.path.join(root, "train.txt"))
    return
  assert all(os.path.isfile(img) and os.path.isfile(mask) for _, img, mask in pairs)
  assert all(p.startswith(str(root / "train.txt")) and "\n" not in p for p in problems)


@FUZZ
@given(text=st.text(max_size=300), raw=st.binary(max_size=300), as_bytes=st.booleans())
def test_colour_tables_of_random_text_or_bytes(tmp_path, text, raw, as_bytes):
  path = tmp_path / "colors.csv"
  with open(path, "wb") as f:
    f.write(raw if as_bytes else text.encode("utf-8", "surrogatepass"))
  try:
    names, colors = labels.read_color_table(str(path))
  except Exception as e:  # pylint: disable=broad-except
    _refused_naming(e, str(path))
    return
  assert len(names) == len(colors) > 0 and colors.dtype == np.uint8 and colors.shape[1] == 3


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mask_h=st.integers(1, 40), mask_w=st.integers(1, 40))
def test_masks_of_any_size(tmp_path_factory, mask_h, mask_w):
  root = tmp_path_factory.mktemp("ds")
  tiny.make_folder_dataset(root, n_train=2, n_val=1)
  mask = root / "trainannot" / "ftrain_1.png"
  Image.fromarray(np.zeros((mask_h, mask_w), np.uint8)).save(mask)
  splits.clear_memory_cache()
  try:
    split = data.load_split(tiny.folder_config(root), "train")
  except DatasetError as e:
    assert f"{mask}: mask is {mask_w}x{mask_h} but its image" in str(e) and "Traceback" not in str(e)
    return
  assert (mask_h, mask_w) == (tiny.H, tiny.W) and len(split) == 2


def test_non_utf8_file_names_are_listed_read_and_named(tmp_path):
  """A file name that is not UTF-8 (bytes from another system's encoding): listed, read, and printable."""
  root = tmp_path / "ds"
  tiny.make_folder_dataset(root, n_train=2, n_val=1, layout="dirs")
  odd = os.fsdecode(b"caf\xe9")  # Latin-1 bytes: not UTF-8
  for folder, suffix in (("train", ""), ("trainannot", "_L")):
    os.rename(root / folder / f"ftrain_1{suffix}.png", os.path.join(root, folder, f"{odd}{suffix}.png"))
  config = tiny.folder_config(root, **{"data.layout": "dirs", "data.mask_suffix": "_L"})
  splits.clear_memory_cache()
  assert len(data.load_split(config, "train")) == 2
  # Damaged under that name: the command line names it in one line, with no UnicodeEncodeError.
  with open(os.path.join(root, "train", f"{odd}.png"), "wb") as f:
    f.write(b"not a png")
  proc = subprocess.run([sys.executable, "main.py", "--config", "tests/tiny_config.py", "--mode", "inspect",
                         "--config.data.source=folder", f"--config.data.root={root}", "--config.data.layout=dirs",
                         "--config.data.mask_suffix=_L", "--config.data.train_split=train",
                         "--config.data.eval_split=val", f"--config.image_height={tiny.H}",
                         f"--config.image_width={tiny.W}"],
                        cwd=REPO, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                                            "PYTHONIOENCODING": "utf-8"})
  out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
  assert "Traceback" not in out and "UnicodeEncodeError" not in out, out[-3000:]
  assert "caf\\udce9.png" in out or "caf\\xe9.png" in out, out[-3000:]


def _fields(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items") and not isinstance(value, dict):
      yield from _fields(value, prefix + key + ".")
    else:
      yield prefix + key


FIELDS = sorted(_fields(tiny.tiny_config()))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(field=st.sampled_from(FIELDS), value=st.one_of(
    st.sampled_from(["abc", "-1", "1e999", "nan", "()", "(1,", "{", "None", "", "[1, 2", "1,2,3", "True",
                     "'x'", "0"]), st.text(max_size=20)))
def test_every_config_field_given_a_wrong_value(field, value):
  """`--config.FIELD=VALUE`: one line naming the field (main.py's parser), or a value of the right type that
  the config checks accept or refuse in one line."""
  import main  # pylint: disable=g-import-not-at-top  (the command line's own parser)
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
  try:
    main.parse_flags(["main.py", "--config=tests/tiny_config.py", f"--config.{field}={value}"], fv)
  except SystemExit as e:
    message = str(e.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert field in message, message
    return
  try:
    config_checks.check_config(fv.config)
  except UserError as e:
    assert "\n" not in str(e) and "Traceback" not in str(e), str(e)
