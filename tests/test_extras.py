"""A feature whose optional package is missing says, in one line, what to pip-install; nothing is written."""

import sys

import pytest

import jaxseg
from jaxseg.models.backbones import keras_applications as keras_port
from jaxseg.runtime import extras


def test_require_names_the_feature_and_the_install_command(monkeypatch):
  monkeypatch.setitem(sys.modules, "keras_hub", None)  # as if it were not installed
  with pytest.raises(extras.MissingDependency) as e:
    extras.require("keras_hub", "the preset 'x'", "jaxseg[keras]")
  assert "the preset 'x' needs the Python package keras_hub" in str(e.value)
  assert str(e.value).endswith("pip install 'jaxseg[keras]'") and "\n" not in str(e.value)
  assert extras.require("json", "anything", "x").dumps([]) == "[]"
  with pytest.raises(extras.MissingDependency, match=r"needs the Python package keras_hub.*jaxseg\[keras\]"):
    extras.check("keras_hub", "the preset 'x'", "jaxseg[keras]")
  extras.check("json", "anything", "x")  # present: no error, nothing imported


def test_export_without_tensorflow_is_refused_before_writing(learned, tmp_path, monkeypatch):
  _, workdir = learned
  monkeypatch.setitem(sys.modules, "tensorflow", None)
  out = tmp_path / "exported"
  with pytest.raises(extras.MissingDependency, match=r"--format saved_model needs .* pip install 'jaxseg\[tf\]'"):
    jaxseg.export(str(workdir), "saved_model", output=str(out))
  assert not out.exists()


def test_a_weights_file_without_h5py_names_the_install(tmp_path, monkeypatch):
  path = tmp_path / keras_port.keras_weights_filename(0.35, 96)
  path.write_bytes(b"\x89HDF\r\n\x1a\n")
  monkeypatch.setitem(sys.modules, "h5py", None)
  with pytest.raises(extras.MissingDependency, match=r"pip install 'jaxseg'$"):
    keras_port.from_keras_mobilenet_v2(str(path), alpha=0.35)
