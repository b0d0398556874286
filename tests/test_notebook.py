"""notebooks/colab_tpu.ipynb executed end to end on CPU, its parameter cell switched to the offline demo
config at tiny sizes: it must train, restore, predict, export and draw its pictures without an error."""

import base64
import io
import json

import nbformat
import pytest
import tiny
from conftest import REPO
from nbclient import NotebookClient
from PIL import Image

NOTEBOOK = REPO / "notebooks" / "colab_tpu.ipynb"


def _parameters(workdir, image):
  overrides = {"image_size": 32, "num_epochs": 2, "batch_size": 8, "eval_batch_size": 8,
               "data.synthetic_train_size": 16, "data.synthetic_eval_size": 8, "num_samples": 2,
               "dtype": "float32"}
  return "\n".join([f"CONFIG = {'configs/demo.py'!r}", f"OVERRIDES = {overrides!r}", f"WORKDIR = {workdir!r}",
                    f"IMAGE = {image!r}", "EXPORT_FORMAT = 'stablehlo'", "REPO_URL = ''"])


@pytest.mark.slow
def test_the_colab_notebook_runs_end_to_end_on_cpu(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
  assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
  image = tmp_path / "upload.png"
  Image.fromarray(tiny.synthetic_photos(1, 50, 70)[0]).save(image)
  workdir = tmp_path / "run"
  params[0].source = _parameters(str(workdir), str(image))
  NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()

  pictures = []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      assert out.get("output_type") != "error", out
      if "image/png" in out.get("data", {}):
        pictures.append(Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"]))))
  # Two epochs' sample panels, the curves and the prediction overlay, each a real picture.
  assert len(pictures) == 4 and all(min(p.size) >= 32 for p in pictures)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2"]
  meta = json.loads((workdir / "export" / "stablehlo_epoch2" / "jaxseg_export.json").read_text())
  assert meta["check"]["ok"] and meta["epoch"] == 2
  text = "".join(out.get("text", "") for c in nb.cells for out in c.get("outputs", []))
  assert "restored the checkpoint of epoch 2" in text and "Exported stablehlo (epoch 2)" in text
