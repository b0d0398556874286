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
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": machine(), "args": vars(args), "seconds": result}, f, indent=1)
  return 0


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.losses", *sys.argv[1:]])
  sys.exit(main())
