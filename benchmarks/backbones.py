"""Backbones and models against keras-hub: `python -m benchmarks.backbones [--repeats 3] [--json FILE]`;
`--dtype float32,mixed_bfloat16 --skip-keras` compares jaxseg's precision policies instead.

Two parts:
- the models table: every decoder over one backbone of each family (parameters, GFLOPs of one 512x512
  forward by XLA's cost analysis, CPU latency of one 512x512 image), jaxseg only;
- against keras-hub under Keras-TF (its default compile: XLA where it can), per family at CamVid's size
  (480x360, padded to 480x384; MiT 416x416 and DINOv2 420x420, keras-hub's take square maps only, DINOv2's of
  whole 14-pixel patches): the encoder's eval forward of one frame, and a fine-tuning train step of batch 2
  (forward, backward and Adam over every encoder weight, loss the mean square of the deepest features;
  DINOv2: of its output tokens); SegFormer whole, against keras-hub's SegFormerImageSegmenter (cross-entropy
  on 19 classes).
  The two sides take turns in fresh processes; medians over the turns. Each runs as its users run it: jaxseg
  with the allocator setting every jaxseg entry point starts with (`jaxseg.runtime.allocator`; without it XLA:CPU
  re-faults its per-step scratch memory, a third of MiT-B0's train step), Keras-TF without it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from benchmarks.harness import fresh_process, machine, timed
from jaxseg.runtime import allocator

ENCODERS = ("resnet50", "mobilenet_v3_large", "efficientnet_b0", "mit_b0", "dinov2_small")
TABLE = (("unet", "mobilenet_v2"), ("deeplabv3plus", "mobilenet_v2"), ("unet", "resnet50"),
         ("deeplabv3plus", "resnet50"), ("deeplabv3plus", "mobilenet_v3_large"), ("deeplabv3plus", "efficientnet_b0"),
         ("unet", "mit_b0"), ("segformer", "mit_b0"), ("segformer", "mit_b2"), ("linear", "dinov2_small"))
SIZE, BATCH, CLASSES = (384, 480), 2, 19
SQUARE = (416, 416)  # keras-hub's MiT only takes square maps: about as many pixels as 480x360
PATCHES = (420, 420)  # keras-hub's DINOv2: square, whole 14-pixel patches


def _size(name: str) -> tuple[int, int]:
  if name.startswith("dinov2"):
    return PATCHES
  return SQUARE if name in ("mit_b0", "segformer_b0") else SIZE


def _config(name: str, backbone: str, size: tuple[int, int]):
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model.name, config.model.backbone, config.model.backbone_weights = name, backbone, "none"
  config.num_classes, config.dtype, config.freeze_encoder = CLASSES, "float32", False
  config.image_height, config.image_width = size
  return config


def jaxseg_table(steps: int) -> list[dict]:
  """Parameters, GFLOPs and latency of one 512x512 image for each `TABLE` row."""
  import jax  # pylint: disable=g-import-not-at-top

  from jaxseg import models  # pylint: disable=g-import-not-at-top
  rows = []
  for name, backbone in TABLE:
    model = models.create_model(_config(name, backbone, (512, 512)))
    x = np.zeros((1, 512, 512, 3), np.float32)
    variables = models.init_variables(model, (512, 512))
    fwd = jax.jit(lambda v, x, m=model: m.apply(v, x))
    cost = fwd.lower(variables, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    latency = timed(lambda f=fwd, v=variables: jax.block_until_ready(f(v, x)), steps)["median"]
    rows.append({"model": name, "backbone": backbone, "params": models.count_params(variables)["total"],
                 "gflops": float(cost.get("flops", 0.0)) / 1e9, "latency_512_s": latency})
  return rows


def _deepest(y):
  """The deepest features of a backbone's output: stride 32, or DINOv2's output tokens."""
  return y["output"] if "output" in y else y[32]


def jaxseg_side(steps: int, names: tuple[str, ...], dtype: str = "float32") -> dict:
  """Eval forward of one frame and a fine-tuning train step, per encoder and for SegFormer-B0, under the
  precision policy `dtype` (`jaxseg.runtime.precision`)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  from jaxseg import models  # pylint: disable=g-import-not-at-top
  from jaxseg.models import backbones  # pylint: disable=g-import-not-at-top
  from jaxseg.runtime import precision  # pylint: disable=g-import-not-at-top
  policy = precision.precision(dtype)
  spec = models.LayerSpec(dtype=policy.compute, gemm_dtype=policy.gemm)
  rng, out = np.random.default_rng(0), {}
  for name in names:
    x = jnp.asarray(rng.uniform(-1, 1, (BATCH, *_size(name), 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, CLASSES, (BATCH, *_size(name))))
    if name == "segformer_b0":
      config = _config("segformer", "mit_b0", _size(name))
      config.dtype = dtype
      module = models.create_model(config)
      loss_of = lambda y: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(y), labels[..., None], -1))
    else:
      module = backbones.create(name, spec=spec)
      loss_of = lambda y: jnp.mean(jnp.square(_deepest(y)))
    variables = module.init(jax.random.key(0), x[:1])
    tx = optax.adam(1e-4)

    def step(params, stats, opt, module=module, loss_of=loss_of, tx=tx, x=x):
      def loss(p):
        y, new = module.apply({"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
        return loss_of(y), new.get("batch_stats", stats)
      (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
      updates, opt = tx.update(grads, opt, params)
      return optax.apply_updates(params, updates), stats, opt, value

    fwd = jax.jit(lambda v, x, m=module: m.apply(v, x))
    frame = x[:1]
    eval_s = timed(lambda f=fwd, v=variables: jax.block_until_ready(f(v, frame)), steps)["median"]
    train = jax.jit(step, donate_argnums=(0, 1, 2))  # (donates the initial variables: timed after eval)
    state = [variables["params"], variables.get("batch_stats", {}), tx.init(variables["params"])]

    def run_train(train=train, state=state):
      state[0], state[1], state[2], value = train(*state)
      jax.block_until_ready(value)

    out[name] = {"train_step_s": timed(run_train, steps)["median"], "eval_frame_s": eval_s}
  return out


def keras_hub_model(name: str):
  """keras-hub's model for `name` (an encoder of `ENCODERS`, or "segformer_b0"), random weights."""
  import keras_hub  # pylint: disable=g-import-not-at-top

  from jaxseg.models import backbones  # pylint: disable=g-import-not-at-top
  if name == "segformer_b0":
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=keras_hub_model("mit_b0"), projection_filters=256)
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=CLASSES)
  return backbones.keras_hub_model(name, _size(name)[0])


def keras_side(steps: int, names: tuple[str, ...]) -> dict:
  """The same measurements of keras-hub's models under Keras-TF (`model.compile` defaults)."""
  import keras  # pylint: disable=g-import-not-at-top
  rng, out = np.random.default_rng(0), {}
  for name in names:
    x = rng.uniform(-1, 1, (BATCH, *_size(name), 3)).astype(np.float32)
    model = keras_hub_model(name)
    if name == "segformer_b0":
      model.compile(optimizer=keras.optimizers.Adam(1e-4),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[])
      y = rng.integers(0, CLASSES, (BATCH, *_size(name)))
    else:
      model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
      y = np.zeros((BATCH, *model.compute_output_shape((BATCH, *_size(name), 3))[1:]), np.float32)
    out[name] = {"train_step_s": timed(lambda m=model, y=y, x=x: m.train_on_batch(x, y), steps)["median"],
                 "eval_frame_s": timed(lambda m=model, x=x: m.predict_on_batch(x[:1]), steps)["median"]}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--side", choices=["jaxseg", "keras", "table"], help="(internal) one side, in this process")
  parser.add_argument("--steps", type=int, default=10, help="timed calls per measurement, after one warm-up")
  parser.add_argument("--repeats", type=int, default=1, help="turns of each side, in fresh processes")
  parser.add_argument("--skip-keras", action="store_true")
  parser.add_argument("--only", default="", help="comma-separated encoders (and segformer_b0) to compare; "
                      "default all")
  parser.add_argument("--dtype", default="float32", help="jaxseg's precision policy; several, comma-separated "
                      "(e.g. float32,mixed_bfloat16), take turns and are compared with the first")
  parser.add_argument("--json", help="write the results here")
  args = parser.parse_args(argv)
  dtypes = [d for d in args.dtype.split(",") if d]
  names = tuple(n for n in args.only.split(",") if n) or (*ENCODERS, "segformer_b0")
  unknown = set(names) - {*ENCODERS, "segformer_b0"}
  if unknown:
    parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join((*ENCODERS, 'segformer_b0'))}")
  if args.side:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sides = {"jaxseg": lambda n: jaxseg_side(n, names, dtypes[0]), "keras": lambda n: keras_side(n, names),
             "table": jaxseg_table}
    result = sides[args.side](args.steps)
    with open(args.json, "w") as f:
      json.dump(result, f)
    return 0
  started = time.time()
  env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
  # Each side as it runs for its users: jaxseg with its allocator setting, Keras-TF in the default environment.
  envs = {"jaxseg": env, "keras": {k: v for k, v in env.items() if k != "GLIBC_TUNABLES"}}
  only = ["--only", args.only] if args.only else []
  table = [] if args.only else fresh_process("benchmarks.backbones", ["--side", "table", "--steps", str(args.steps)],
                                            env)
  turns = [("jaxseg" if i == 0 else f"jaxseg {d}", "jaxseg", d) for i, d in enumerate(dtypes)]
  turns += [] if args.skip_keras else [("keras", "keras", "float32")]
  runs = {key: [] for key, _, _ in turns}
  for _ in range(args.repeats):
    for key, side, dtype in turns:
      runs[key].append(fresh_process("benchmarks.backbones", ["--side", side, "--steps", str(args.steps),
                                                              "--dtype", dtype, *only], envs[side]))
  med = {side: _median(r) for side, r in runs.items() if r}
  print(f"{machine()}; models at 512x512, batch 1")
  for row in table if isinstance(table, list) else []:
    print(f"  {row['model']:>13} / {row['backbone']:<18} {row['params'] / 1e6:6.2f} M params "
          f"{row['gflops']:7.1f} GFLOPs  {1e3 * row['latency_512_s']:8.1f} ms")
  print(f"against keras-hub (Keras-TF) at {SIZE[1]}x{SIZE[0]} (MiT: {SQUARE[1]}x{SQUARE[0]}, DINOv2: "
        f"{PATCHES[1]}x{PATCHES[0]}): train step batch {BATCH} / eval one frame")
  print(f"jaxseg under {dtypes[0]}" + "".join(f"; under {d} (ratio to {dtypes[0]})" for d in dtypes[1:]))
  for name in names:
    mine, theirs = med.get("jaxseg", {}).get(name, {}), med.get("keras", {}).get(name, {})
    line = f"  {name:<20} jaxseg {mine.get('train_step_s', float('nan')):.3f} / {mine.get('eval_frame_s', 0):.3f} s"
    for d in dtypes[1:]:
      other = med.get(f"jaxseg {d}", {}).get(name)
      if other and mine:
        line += (f"  {d} {other['train_step_s']:.3f} / {other['eval_frame_s']:.3f} s "
                 f"({other['train_step_s'] / mine['train_step_s']:.2f}x / "
                 f"{other['eval_frame_s'] / mine['eval_frame_s']:.2f}x)")
    if theirs:
      ratio = [mine[k] / theirs[k] for k in ("train_step_s", "eval_frame_s")]
      line += (f"  keras-hub {theirs['train_step_s']:.3f} / {theirs['eval_frame_s']:.3f} s  ratio "
               f"{ratio[0]:.2f}x / {ratio[1]:.2f}x")
    print(line)
  if args.json:
    with open(args.json, "w") as f:
      allocators = {side: e.get("GLIBC_TUNABLES", "default") for side, e in envs.items()}
      json.dump({"machine": machine(), "allocator": allocators, "dtypes": dtypes, "table": table,
                 "runs": runs, "median": med,
                 "wall_s": time.time() - started}, f, indent=1)
  return 0


def _median(runs: list[dict]) -> dict:
  ok = [r for r in runs if "error" not in r]
  if not ok:
    print(f"failed: {runs[0].get('error')}", file=sys.stderr)
    return {}
  return {name: {k: float(np.median([r[name][k] for r in ok])) for k in ok[0][name]} for name in ok[0]}


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.backbones", *sys.argv[1:]])
  sys.exit(main())
