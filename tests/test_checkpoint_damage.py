"""Damaged checkpoints: every kind of file a checkpoint holds, flipped, truncated, emptied or deleted, gives
the newest intact checkpoint after one line naming the damaged one (or is read back as saved); training moves
the damaged step aside and resumes; nothing prints a traceback."""

import glob
import os
import shutil

import jax
import numpy as np
import pytest
import tiny

import jaxseg
from jaxseg.training import checkpoints, intact, loop
from jaxseg.training.mid_epoch import MidEpoch
from jaxseg.training.run import Run

# A checkpoint step's files (relative to checkpoints/<step>/); "ARRAYS": the largest array data file (what it
# holds varies: inference may not read it), "ALL_ARRAYS": every array data file.
FILES = ["_CHECKPOINT_METADATA", "meta/metadata", "state/_METADATA", "state/_sharding",
         "state/array_metadatas/process_0", "state/manifest.ocdbt", "state/ocdbt.process_0/manifest.ocdbt", "ARRAYS",
         "ALL_ARRAYS"]
HOWS = ["flip", "truncate", "empty", "delete"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny run with checkpoints 1 and 2, and step 2's parameters as saved."""
  workdir = tmp_path_factory.mktemp("run")
  loop.train_and_evaluate(tiny.tiny_config(num_epochs=2), str(workdir))
  state, step = Run(tiny.tiny_config(), str(workdir), read_only=True).restore_for_inference()
  assert step == 2
  return workdir, jax.device_get(state.params)


def _copy(trained, tmp_path) -> str:
  workdir = str(tmp_path / "run")
  shutil.copytree(trained[0], workdir)
  return workdir


def _damage(workdir: str, step: int, name: str, how: str) -> str:
  base = os.path.join(workdir, "checkpoints", str(step))
  if name == "ALL_ARRAYS":
    for path in glob.glob(os.path.join(base, "state", "ocdbt.process_0", "d", "*")):
      _damage(workdir, step, os.path.relpath(path, base), how)
    return base
  if name == "ARRAYS":
    path = max(glob.glob(os.path.join(base, "state", "ocdbt.process_0", "d", "*")), key=os.path.getsize)
  else:
    path = os.path.join(base, name)
  assert os.path.isfile(path), path
  if how == "delete":
    os.remove(path)
    return path
  with open(path, "rb") as f:
    content = bytearray(f.read())
  if how == "flip":
    for i in range(len(content) // 3, len(content), max(1, len(content) // 7)):
      content[i] ^= 0x5A
  with open(path, "wb") as f:
    f.write(b"" if how == "empty" else content[:len(content) // 2] if how == "truncate" else content)
  return path


def _contents(directory: str) -> dict[str, bytes]:
  out = {}
  for path in glob.glob(os.path.join(directory, "**"), recursive=True):
    if os.path.isfile(path):
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def _same(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(x, y), a, b)))


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("name", FILES)
def test_readers_use_the_newest_intact_checkpoint_and_say_so(trained, tmp_path, capfd, name, how):
  workdir = _copy(trained, tmp_path)
  _damage(workdir, 2, name, how)
  before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  state, step = Run(tiny.tiny_config(), workdir, read_only=True).restore_for_inference()
  out, err = capfd.readouterr()
  assert err == "", err[-2000:]
  if step == 2:  # this damage does not touch what inference reads: read back exactly as saved
    assert name != "ALL_ARRAYS"
    assert _same(jax.device_get(state.params), trained[1])
    assert out == ""
  else:
    assert step == 1
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("The checkpoint of epoch 2 in ") and "is damaged (" in lines[0], out
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before  # readers change nothing


@pytest.mark.parametrize("name,how", [("ARRAYS", "flip"), ("ARRAYS", "truncate"), ("meta/metadata", "empty"),
                                      ("state/_METADATA", "delete")])
def test_training_moves_the_damaged_step_aside_and_resumes(trained, tmp_path, capfd, name, how):
  workdir = _copy(trained, tmp_path)
  _damage(workdir, 2, name, how)
  damaged = _contents(os.path.join(workdir, "checkpoints", "2"))
  history = loop.train_and_evaluate(tiny.tiny_config(num_epochs=3), workdir)
  out, err = capfd.readouterr()
  assert "Traceback" not in out + err
  assert f"The checkpoint of epoch 2 in {os.path.join(workdir, 'checkpoints')} is damaged (" in out
  assert "moved aside to " in out and "Resuming from" in out
  assert [h["epoch"] for h in history] == [1, 2, 3]  # epoch 2 trained again
  assert checkpoints.manager(workdir, read_only=True).all_steps() == [1, 2, 3]
  aside = os.path.join(workdir, "checkpoints", "2.damaged")
  assert _contents(aside) == damaged  # moved, not deleted or changed
  assert os.path.isfile(os.path.join(workdir, "checkpoints", "2", "meta", "metadata"))  # epoch 2's new one


def test_a_damaged_step_asked_for_is_named_with_the_steps_that_restore(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  _damage(workdir, 2, "ALL_ARRAYS", "truncate")
  with pytest.raises(intact.DamagedCheckpoint, match=r"the checkpoint of epoch 2 in .* is damaged \(.*\); epochs that "
                     r"restore: 1\.$"):
    Run(tiny.tiny_config(), workdir, read_only=True).restore_for_inference(2)
  assert Run(tiny.tiny_config(), workdir, read_only=True).restore_for_inference(1)[1] == 1


def test_when_every_step_is_damaged_readers_refuse_and_training_starts_afresh(trained, tmp_path, capfd):
  workdir = _copy(trained, tmp_path)
  for step in (1, 2):
    _damage(workdir, step, "meta/metadata", "empty")
  with pytest.raises(intact.DamagedCheckpoint, match=r"no checkpoint in .* restores \(epochs 2, 1 are damaged\)"):
    jaxseg.load(workdir)
  capfd.readouterr()
  loop.train_and_evaluate(tiny.tiny_config(num_epochs=1), workdir)
  out, _ = capfd.readouterr()
  assert "No checkpoint in " in out and "restores: starting a new run." in out
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "1.damaged", "2.damaged"]


def test_the_record_and_the_arrays_carry_checksums(trained, tmp_path):
  """Changes that still decode: a digit of the JSON record, one value of the restored arrays."""
  workdir = _copy(trained, tmp_path)
  mngr = checkpoints.manager(workdir, read_only=True)
  _, meta = checkpoints.read_meta(mngr, 2)
  assert checkpoints.verify_meta(meta) is meta
  changed = {**meta, "epoch": meta["epoch"] + 1}
  with pytest.raises(ValueError, match="differs from what was saved"):
    checkpoints.verify_meta(changed)
  restored = jax.tree.map(np.asarray, checkpoints.restore_variables(mngr, 2, None, meta))
  assert checkpoints.verify_state(restored, meta) is restored
  leaves, treedef = jax.tree.flatten(restored["params"])
  leaves[-1] = leaves[-1] + np.float32(1e-3)  # one tensor a little off
  with pytest.raises(ValueError, match="the arrays of params differ from what was saved"):
    checkpoints.verify_state({**restored, "params": jax.tree.unflatten(treedef, leaves)}, meta)


def test_a_damaged_mid_epoch_checkpoint_is_moved_aside_and_the_epoch_restarts(trained, tmp_path, capfd):
  workdir = _copy(trained, tmp_path)
  config = tiny.tiny_config(num_epochs=3)
  run = Run(config, workdir)
  state = run.restore()[0]
  mid = MidEpoch(workdir)
  meta = checkpoints.make_meta(config, 2, [])
  mid.save(9, state.to_dict(), jax.device_get(run.zero_sums()), meta, epoch=3, batch=1, input_state={"batch": 1})
  path = os.path.join(mid.directory, "9", "meta", "metadata")  # where the input iterator's state is kept
  with open(path, "r+b") as f:
    f.truncate(10)
  capfd.readouterr()
  said = []
  assert mid.resume(config, 2, state.to_dict(), run.zero_sums(), said.append) is None
  assert len(said) == 2 and said[0].startswith("The checkpoint of step 9 in ") and "moved aside" in said[0], said
  assert os.listdir(mid.directory) == ["9.damaged"]
  assert capfd.readouterr().err == ""


@pytest.mark.parametrize("mode", ["eval", "predict"])
def test_cli_readers_name_the_damaged_step_in_one_line(trained, tmp_path, mode):
  workdir = _copy(trained, tmp_path)
  _damage(workdir, 2, "ALL_ARRAYS", "flip")
  args = ["--workdir", workdir, "--mode", mode]
  if mode == "predict":
    from PIL import Image  # pylint: disable=g-import-not-at-top
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "photo.png")
    args += ["--images", str(tmp_path / "photo.png"), "--output", str(tmp_path / "out")]
  proc = tiny.main_py(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Traceback" not in proc.stdout + proc.stderr and "Event loop" not in proc.stderr
  damaged = [line for line in (proc.stdout + proc.stderr).splitlines() if "damaged" in line]
  assert len(damaged) == 1 and damaged[0].startswith("The checkpoint of epoch 2 in "), damaged
  assert "Using the checkpoint of epoch 1, the newest that restores." in proc.stdout
  proc = tiny.run_cli("--workdir", workdir, "--mode", "eval", "--epoch", "2")
  assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
  assert "epochs that restore: 1." in proc.stdout + proc.stderr


def test_load_and_export_use_the_newest_intact_checkpoint(trained, tmp_path, capfd):
  from jaxseg.inference import export as deploy  # pylint: disable=g-import-not-at-top
  workdir = _copy(trained, tmp_path)
  _damage(workdir, 2, "state/_METADATA", "truncate")
  assert jaxseg.load(workdir).epoch == 1
  exported = deploy.export(workdir, "stablehlo", output=str(tmp_path / "exported"), check_images=1)
  assert exported.epoch == 1
  out, err = capfd.readouterr()
  assert "Traceback" not in out + err
  assert out.count("The checkpoint of epoch 2 in ") == 2  # once for each: load, export
