"""The PyTorch side of `benchmarks.gpu`, run in its own process (JAX and PyTorch would share a GPU's memory).

  python -m benchmarks.torch_runner --resolution 128 --batch 256 [--bf16] [--compile] [--channels-last]

Prints one JSON line: train and inference images/s of `benchmarks.torch_unet.TorchUNet` (frozen encoder, Adam
on the decoder), first-step (compile) time, and the settings used.
"""

import argparse
import json
import sys
import time

import torch

from benchmarks import harness, torch_unet


def _sync(device: torch.device) -> None:
  if device.type == "cuda":
    torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.torch_runner", description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=int, required=True)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
  parser.add_argument("--compile", action="store_true", help="torch.compile the model")
  parser.add_argument("--channels-last", action="store_true", help="NHWC memory format")
  parser.add_argument("--alpha", type=float, default=1.0)
  args = parser.parse_args(argv)

  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  # Same convolution precision as XLA's default on GPU: TF32 for float32 convs and matmuls.
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
  torch.backends.cudnn.benchmark = True
  fmt = torch.channels_last if args.channels_last else torch.contiguous_format
  model = torch_unet.TorchUNet(alpha=args.alpha).freeze_encoder().to(device, memory_format=fmt)
  size, batch = args.resolution, args.batch
  gen = torch.Generator(device="cpu").manual_seed(0)
  x = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device).contiguous(memory_format=fmt)
  y = torch.randint(0, 3, (batch, size, size), generator=gen).to(device)
  step = torch_unet.make_train_step(model, bf16=args.bf16, compile_model=args.compile)

  t = time.perf_counter()
  loss = step(x, y)
  _sync(device)
  first_s = time.perf_counter() - t
  train_img_s = harness.throughput(lambda: step(x, y), lambda: _sync(device), args.steps, batch)

  model.eval()
  infer = torch.compile(model) if args.compile else model

  def predict():
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
      return infer(x).argmax(1)

  t = time.perf_counter()
  predict()
  _sync(device)
  eval_first_s = time.perf_counter() - t
  eval_img_s = harness.throughput(predict, lambda: _sync(device), args.steps, batch)
  name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
  print(json.dumps({"framework": f"torch {torch.__version__}", "device": name,
                    "resolution": size, "batch": batch, "bf16": args.bf16, "compile": args.compile,
                    "channels_last": args.channels_last, "train_img_s": train_img_s, "compile_s": first_s,
                    "eval_img_s": eval_img_s, "eval_compile_s": eval_first_s, "loss": float(loss)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
