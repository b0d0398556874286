"""Config files loaded by path with dotted overrides (what notebooks use instead of main.py's flags)."""

import pytest
from conftest import REPO

import jaxseg
from jaxseg.config import checks as config_checks
from jaxseg.config.checks import ConfigError


def test_a_config_file_with_overrides():
  config = jaxseg.load_config("configs/r224.py", {"num_epochs": 3, "data.source": "folder",
                                                  "model.backbone": "mobilenet_v2_0.5"})
  assert config.image_size == 224 and config.name == "r224"  # the variant's own fields
  assert (config.num_epochs, config.data.source, config.model.backbone) == (3, "folder", "mobilenet_v2_0.5")
  assert jaxseg.load_config("configs/r224.py").num_epochs == 20  # a fresh config each time


def test_field_value_strings_parse_as_literals_or_stay_strings():
  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
  got = config_files.parse_overrides(["batch_size=4", "augment.crop=(64, 96)", "data.root=/a=b", "flip=True"])
  assert got == {"batch_size": 4, "augment.crop": (64, 96), "data.root": "/a=b", "flip": True}
  with pytest.raises(ConfigError, match="--set batch_size: give FIELD=VALUE"):
    config_files.parse_overrides(["batch_size"])


@pytest.mark.parametrize("path,overrides,words", [
    ("configs/nope.py", None, "config file configs/nope.py not found"),
    ("configs/r224.py", {"data.sauce": "folder"}, "'data.sauce': no such field"),
    ("configs/r224.py", {"nmu_epochs": 3}, "'nmu_epochs': no such field"),
    ("configs/r224.py", {"num_epochs": "many"}, "num_epochs='many'"),
])
def test_mistakes_are_one_clear_error(path, overrides, words):
  with pytest.raises(ConfigError, match=words):
    jaxseg.load_config(path, overrides)


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "configs").glob("*.py")
                                        if p.name not in ("__init__.py", "standard_recipe.py")))
def test_every_config_file_passes_the_checks(path):
  config = jaxseg.load_config(f"configs/{path}")
  config_checks.check_config(config)
  assert config.name == path[:-3]  # its runs go to runs/<file name>
  assert len(config.data.class_names) == len(config.data.class_colors) == config.num_classes
