"""The losses' cost in a train step: loss and gradient with respect to the logits, jitted, per loss and form.

  python -m benchmarks.losses [--batch 8] [--size 384 480] [--classes 11] [--steps 5] [--repeats 3] [--json F]

At CamVid's whole frames by default (8 x 384 x 480 x 11, the batch of configs/camvid_combined.py). Each
form is compiled once; the repeats take turns over the forms and the medians are reported, with each form's
time as a ratio to the cross-entropy's, Lovasz-softmax's sorted-key form against its two-operand sort, and its
histogram form (`loss.lovasz_bins`) against the sorted keys.
"""

import argparse
import json
import sys

import numpy as np

from benchmarks.harness import machine, timed
from jaxseg.runtime import allocator

# name -> (loss, kernels, Lovasz bins).
FORMS = {"cross_entropy": ("cross_entropy", "auto", 0), "lovasz (sorted keys)": ("lovasz", "gemm", 0),
         "lovasz (two-operand sort)": ("lovasz", "xla", 0), "lovasz (histogram, 65536 bins)": ("lovasz", "auto", 65536)}


def measure(batch: int, size: tuple[int, int], classes: int, steps: int, repeats: int) -> dict[str, float]:
  """Median seconds of one loss-and-gradient call per form."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxseg.training import losses  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(0, 2, (batch, *size, classes)), jnp.float32)
  labels = jnp.asarray(np.where(rng.uniform(size=(batch, *size)) < 0.05, 255,
                                rng.integers(0, classes, (batch, *size))), jnp.int32)
  forms = {name: losses.Loss(name_, 0.7, 100000, kernels, lovasz_bins=bins)
           for name, (name_, kernels, bins) in FORMS.items()}
  fns = {name: jax.jit(jax.value_and_grad(lambda x, f=f: f(x, labels))) for name, f in forms.items()}
  times = {name: [] for name in FORMS}
  for _ in range(repeats):
    for name, fn in fns.items():
      times[name].append(timed(lambda fn=fn: jax.block_until_ready(fn(logits)), steps)["median"])
  return {name: float(np.median(t)) for name, t in times.items()}


AGREEMENT_BINS = (4096, 65536, 2**20)  # the histogram's bin counts `agreement` compares with the sort


def agreement(margins=(4, 8, 12, 16), bins=AGREEMENT_BINS, classes: int = 11) -> list[dict[str, float]]:
  """How far the histogram form is from the sorted one as a model grows confident: per margin of the labelled
  class's logit (5% of pixels given a wrong class that margin instead), the median error, the sorted loss's
  gradient norm, and per bin count the loss's difference and the gradient's, relative to its norm (4 x 96 x 128
  frames of 8 x 8-pixel label blocks)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxseg.training import losses  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  labels = np.repeat(np.repeat(rng.integers(0, classes, (4, 12, 16)), 8, 1), 8, 2)
  labels[:, :4] = 255
  onehot = np.eye(classes, dtype=np.float32)[np.clip(labels, 0, classes - 1)] * (labels != 255)[..., None]
  wrong = (rng.uniform(size=labels.shape) < 0.05)[..., None]
  y, rows = jnp.asarray(labels), []
  for margin in margins:
    x = jnp.asarray(rng.normal(0, 1.5, onehot.shape).astype(np.float32)
                    + margin * np.where(wrong, np.roll(onehot, 1, -1), onehot))
    loss, grad = jax.value_and_grad(lambda x: losses.lovasz_softmax(x, y))(x)
    row = {"margin": margin, "median_error": float(jnp.median(1 - jnp.max(jax.nn.softmax(x, -1), -1))),
           "grad_norm": float(jnp.linalg.norm(grad))}
    for n in bins:
      got, got_grad = jax.value_and_grad(lambda x, n=n: losses.lovasz_softmax(x, y, bins=n))(x)
      row[f"loss_diff_{n}"] = float(got - loss)
      row[f"grad_rel_{n}"] = float(jnp.linalg.norm(got_grad - grad) / jnp.linalg.norm(grad))
    rows.append(row)
  return rows


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, nargs=2, default=(384, 480), metavar=("H", "W"))
  parser.add_argument("--classes", type=int, default=11)
  parser.add_argument("--steps", type=int, default=5, help="timed calls per turn, after one warm-up")
  parser.add_argument("--repeats", type=int, default=3, help="turns over the forms")
  parser.add_argument("--json", help="write the results here")
  args = parser.parse_args(argv)
  result = measure(args.batch, tuple(args.size), args.classes, args.steps, args.repeats)
  ce = result["cross_entropy"]
  print(f"{machine()}; loss + gradient of ({args.batch}, {args.size[0]}, {args.size[1]}, {args.classes}) logits, "
        f"medians of {args.repeats} turns")
  for name, seconds in result.items():
    print(f"  {name:<31} {seconds:8.3f} s  {seconds / ce:6.1f}x the cross-entropy")
  fast, plain = result["lovasz (sorted keys)"], result["lovasz (two-operand sort)"]
  print(f"  Lovasz-softmax: sorted keys {fast / plain:.2f}x the two-operand sort's time, the histogram "
        f"{result['lovasz (histogram, 65536 bins)'] / fast:.2f}x the sorted keys'")
  rows = agreement()
  print("The histogram against the sorted form, by confidence: loss difference, gradient difference / its norm")
  for r in rows:
    print(f"  margin {r['margin']:>2} (median error {r['median_error']:.1e}, gradient norm {r['grad_norm']:.1e}): "
          + "; ".join(f"{n} bins {r[f'loss_diff_{n}']:+.1e}, {r[f'grad_rel_{n}']:.1e}" for n in AGREEMENT_BINS))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": machine(), "args": vars(args), "seconds": result, "agreement": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.losses", *sys.argv[1:]])
  sys.exit(main())
