"""backbone_weights="imagenet" for MobileNetV2 without Keras: the Keras ImageNet file is downloaded once into
Keras's cache (`$KERAS_HOME/models`) from the address keras.applications uses (here a loopback server over a
file this test writes in that format) and read with h5py; a failed download is one line and leaves nothing."""

import functools
import http.server
import threading

import h5py
import jax
import numpy as np
import pytest
import tiny

from jaxseg.models import MobileNetV2
from jaxseg.models.backbones import keras_applications as port

_KERAS_NAMES = {"scale": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}


def _write_keras_h5(path, variables):
  """The layout of Keras 2's `save_weights` (.h5) that keras.applications ships: one group per layer, its
  `weight_names` attribute listing `<layer>/<weight>:0` datasets, Keras's own weight names."""
  with h5py.File(path, "w") as f:
    layers = sorted(set(variables["params"]) | set(variables["batch_stats"]))
    f.attrs["layer_names"] = [n.encode() for n in layers]
    for layer in layers:
      g, names = f.create_group(layer), []
      for collection in ("params", "batch_stats"):
        for key, value in variables[collection].get(layer, {}).items():
          name = _KERAS_NAMES.get(key, "depthwise_kernel" if "depthwise" in layer and key == "kernel" else key)
          names.append(f"{layer}/{name}:0".encode())
          g.create_dataset(names[-1].decode(), data=np.asarray(value))
      g.attrs["weight_names"] = names


class Truncating(http.server.SimpleHTTPRequestHandler):
  """Serves files, but with `cut` set sends only that many bytes of one under its full Content-Length."""
  cut = 0

  def copyfile(self, source, outputfile):
    if not Truncating.cut:
      return super().copyfile(source, outputfile)
    outputfile.write(source.read(Truncating.cut))
    self.close_connection = True
    return None


@pytest.fixture
def server(tmp_path, monkeypatch):
  """(served directory, request log): an HTTP server on 127.0.0.1 standing in for Keras's download address."""
  served, requests = tmp_path / "served", []
  served.mkdir()

  class Handler(Truncating):
    def log_message(self, *args):
      requests.append(self.path)

  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  monkeypatch.setattr(port, "KERAS_WEIGHTS_URL", f"http://127.0.0.1:{httpd.server_address[1]}/mobilenet_v2/")
  monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
  yield served, requests
  httpd.shutdown()
  Truncating.cut = 0


def test_imagenet_weights_download_once_into_keras_cache_and_port_without_keras(server, tmp_path):
  served, requests = server
  want = tiny.random_variables(MobileNetV2(alpha=0.35), np.zeros((1, 96, 96, 3), np.float32), seed=4)
  (served / "mobilenet_v2").mkdir()
  _write_keras_h5(served / "mobilenet_v2" / port.keras_weights_filename(0.35, 96), want)
  got = port.encoder_variables("imagenet", 0.35, 96)
  cached = tmp_path / "keras_home" / "models" / port.keras_weights_filename(0.35, 96)
  assert cached.is_file() and len(requests) == 1
  flat_want = dict(jax.tree_util.tree_leaves_with_path(want))
  flat_got = dict(jax.tree_util.tree_leaves_with_path(got))
  assert len(flat_got) == len(flat_want) > 250
  for key, value in flat_want.items():
    np.testing.assert_array_equal(flat_got[key], value, err_msg=jax.tree_util.keystr(key))
  port.encoder_variables("imagenet", 0.35, 96)  # from the cache: no second request
  assert len(requests) == 1


@pytest.mark.parametrize("how", ["missing", "cut short", "not HDF5"])
def test_a_failed_download_is_one_line_and_leaves_no_file(server, tmp_path, how):
  served, requests = server
  (served / "mobilenet_v2").mkdir()
  name = port.keras_weights_filename(0.5, 128)
  if how == "cut short":  # the server announces more than it sends, then closes the connection
    served_file = served / "mobilenet_v2" / name
    _write_keras_h5(served_file, tiny.random_variables(MobileNetV2(alpha=0.5), np.zeros((1, 128, 128, 3),
                                                                                       np.float32)))
    Truncating.cut = served_file.stat().st_size // 3
  elif how == "not HDF5":
    (served / "mobilenet_v2" / name).write_bytes(b"<html>a captive portal's page</html>")
  with pytest.raises(port.WeightsError) as e:
    port.encoder_variables("imagenet", 0.5, 128)
  message = str(e.value)
  assert requests and "\n" not in message and name in message and "--config.model.backbone_weights=none" in message
  why = {"missing": "HTTPError", "cut short": "stopped after", "not HDF5": "not a readable weights file"}
  assert why[how] in message
  models = tmp_path / "keras_home" / "models"
  assert not models.exists() or not list(models.iterdir())
