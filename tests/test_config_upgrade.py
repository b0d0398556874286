"""Configs of every age read alike: a saved config is brought to today's fields once (`jaxseg.config.upgrade`),
the defaults live in the default config only, and a config missing a field is one line naming it."""

import json
import re

import ml_collections
import pytest
import tiny
from conftest import REPO

from jaxseg.config import checks, defaults, upgrade
from jaxseg.errors import ConfigError
from jaxseg.training import checkpoints


def _earlier_config() -> dict:
  """A config as an earlier release saved it: no config_format, `conv_impl`, fields it did not have yet."""
  saved = json.loads(tiny.tiny_config().to_json_best_effort())
  saved["model"]["conv_impl"] = saved["model"].pop("kernels")
  del saved["model"]["decoder_bn_debias"], saved["data"]["pipeline"], saved["data"]["tfds_file_format"]
  del saved["optimizer"], saved["eval"], saved["loss"]["ohem_min_kept"]
  saved["distributed"] = False
  return saved


def test_an_earlier_releases_config_keeps_what_it_did_and_gains_todays_fields():
  config = checkpoints.saved_config({"config": json.dumps(_earlier_config())})
  assert upgrade.missing_field(config) == ""
  checks.check_config(config)
  assert config.model.kernels == "auto" and "conv_impl" not in config.model
  # Fields whose default changed since: what that release did without them.
  assert (config.model.decoder_bn_debias, config.data.pipeline, config.data.tfds_file_format) == (
      False, "memory", "tfrecord")
  # The others: today's defaults; its own values kept.
  default = defaults.get_config()
  assert config.optimizer == "adam" and config.eval.to_dict() == default.eval.to_dict()
  assert config.loss.ohem_min_kept == default.loss.ohem_min_kept and config.distributed is False
  assert config.image_size == 32 and config.model.backbone == "mobilenet_v2_0.35" and "alpha" not in config.model


def test_a_current_config_reads_back_as_written():
  config = tiny.tiny_config(optimizer="sgd", **{"data.pipeline": "stream", "model.kernels": "xla"})
  meta = checkpoints.make_meta(config, 1, [])
  assert meta["config_format"] == upgrade.FORMAT
  assert checkpoints.saved_config(meta).to_dict() == json.loads(config.to_json_best_effort())
  # A field a format-2 config lacks takes today's default, not an earlier release's behaviour.
  saved = json.loads(meta["config"])
  del saved["data"]["pipeline"]
  assert checkpoints.saved_config({**meta, "config": json.dumps(saved)}).data.pipeline == "auto"


def test_a_saved_class_map_is_taken_whole():
  # The class map is the dataset's own mapping, not a group of fields: nothing of the default's is merged in.
  config = tiny.tiny_config(**{"data.class_map": {"7": 0, "9": "ignore"}})
  meta = checkpoints.make_meta(config, 1, [])
  assert checkpoints.saved_config(meta).data.class_map.to_dict() == {"7": 0, "9": "ignore"}
  checks.check_config(config)  # and a config with its own class map is complete
  saved = json.loads(meta["config"])
  assert checkpoints.saved_config({"config": json.dumps(saved)}).data.class_map.to_dict() == {"7": 0, "9": "ignore"}


def test_a_config_missing_a_field_is_one_line_naming_it():
  config = tiny.tiny_config()
  del config.loss["ohem_min_kept"]
  with pytest.raises(ConfigError, match=r"^config\.loss\.ohem_min_kept is missing: build configs from "):
    checks.check_config(config)


def test_no_module_keeps_a_default_of_a_config_field():
  # `config.get("field", default)` beside the default config is how defaults came to disagree.
  pattern = re.compile(r"\b(config|d|data|loss|model|e)(\.[a-z_]+)*\.get\(\"[a-z_]+\", ")
  found = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "jaxseg").rglob("*.py")
           for n, line in enumerate(p.read_text().splitlines(), 1)
           if pattern.search(line) and "meta" not in line and "trained" not in line]
  assert not found, found


@pytest.mark.parametrize("backbone,alpha,scale,want_backbone,want_scale", [
    ("mobilenet_v2", 0.5, (0.01,) * 3, "mobilenet_v2_0.5", ()),  # MobileNetV2 ignored the normalisation then
    ("mobilenet_v2", 1.0, (), "mobilenet_v2", ()),
    ("resnet18", 1.0, (0.01,) * 3, "resnet18", (0.01,) * 3),  # other backbones applied it: kept
])
def test_format_2_configs_name_mobilenet_v2s_width(backbone, alpha, scale, want_backbone, want_scale):
  saved = defaults.get_config().to_dict()
  saved["model"].update(backbone=backbone, alpha=alpha, input_scale=scale, input_offset=tuple(-x for x in scale))
  config = ml_collections.ConfigDict(upgrade.upgraded(saved, 2))
  assert (config.model.backbone, tuple(config.model.input_scale)) == (want_backbone, want_scale)
  assert "alpha" not in config.model
  checks.check_config(config)
  identity = upgrade.upgraded_identity({"name": "unet", "backbone": backbone, "alpha": alpha})
  assert identity == {"name": "unet", "backbone": want_backbone}
