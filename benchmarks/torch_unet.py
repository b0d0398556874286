"""The same U-Net in PyTorch: the comparison model of the GPU benchmark (`benchmarks.gpu`).

Layer for layer what `jaxseg.models.UNet` computes (Keras MobileNetV2 taps, TensorFlow's asymmetric 'same'
padding, ReLU6, BatchNorm eps 1e-3, Keras-aligned 3x3 stride-2 transposed convs), so a speed comparison is
between two implementations of one model, not two models. `load_jaxseg_variables` copies a jaxseg
`{"params", "batch_stats"}` tree in; the tests hold its logits and first training step to jaxseg's.

PyTorch is an optional dependency (`pip install -e ".[torch]"`); jaxseg itself never imports this module.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from jaxseg.models.backbones.mobilenet_v2 import BLOCKS, UNET_TAPS, make_divisible
from jaxseg.ops.common import same_padding


def _bn(channels: int, keras_momentum: float) -> nn.BatchNorm2d:
  # PyTorch's momentum weighs the new batch; Keras's weighs the old average.
  return nn.BatchNorm2d(channels, eps=1e-3, momentum=1.0 - keras_momentum)


class SameConv3x3(nn.Conv2d):
  """A bias-free 3x3 conv with TensorFlow 'same' padding ((0, 1) before/after for stride 2, even sizes)."""

  def __init__(self, cin: int, cout: int, stride: int, groups: int = 1):
    super().__init__(cin, cout, 3, stride, padding=0, groups=groups, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    s = self.stride[0]
    (top, bottom), (left, right) = (same_padding(x.shape[i], 3, s) for i in (2, 3))
    return super().forward(F.pad(x, (left, right, top, bottom)))


class ConvTranspose3x3S2(nn.ConvTranspose2d):
  """Keras `Conv2DTranspose(3, strides=2, padding="same")`: the full scatter (2n + 1) with the last row and
  column cropped. PyTorch's own padding=1, output_padding=1 would crop the first instead (a one-pixel shift)."""

  def __init__(self, cin: int, cout: int, bias: bool):
    super().__init__(cin, cout, 3, stride=2, padding=0, bias=bias)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[2], x.shape[3]
    return super().forward(x)[:, :, :2 * h, :2 * w]


class MobileNetV2Encoder(nn.Module):
  """MobileNetV2 up to `block_16_project`; `forward` returns the five U-Net taps, fine to coarse."""

  def __init__(self, alpha: float = 1.0, bn_momentum: float = 0.999):
    super().__init__()
    self.layers = nn.ModuleDict()  # Keras layer name -> module (ReLU6 and adds have no parameters)
    first = make_divisible(32 * alpha)
    self.layers["Conv1"] = SameConv3x3(3, first, 2)
    self.layers["bn_Conv1"] = _bn(first, bn_momentum)
    self.blocks: list[tuple[str, int, int, int]] = []  # (prefix, in channels, out channels, stride)
    cin = first
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
      prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
      cout, mid = make_divisible(int(filters * alpha)), cin * expansion
      if block_id:
        self.layers[prefix + "expand"] = nn.Conv2d(cin, mid, 1, bias=False)
        self.layers[prefix + "expand_BN"] = _bn(mid, bn_momentum)
      self.layers[prefix + "depthwise"] = SameConv3x3(mid, mid, stride, groups=mid)
      self.layers[prefix + "depthwise_BN"] = _bn(mid, bn_momentum)
      self.layers[prefix + "project"] = nn.Conv2d(mid, cout, 1, bias=False)
      if block_id != len(BLOCKS) - 1:  # the U-Net's bottleneck is block_16_project, before its BN
        self.layers[prefix + "project_BN"] = _bn(cout, bn_momentum)
      self.blocks.append((prefix, cin, cout, stride))
      cin = cout

  def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
    f = self.layers
    taps = {}
    x = F.relu6(f["bn_Conv1"](f["Conv1"](x)))
    for prefix, cin, cout, stride in self.blocks:
      y = x
      if prefix + "expand" in f:
        y = F.relu6(f[prefix + "expand_BN"](f[prefix + "expand"](y)))
        taps[prefix + "expand_relu"] = y
      y = F.relu6(f[prefix + "depthwise_BN"](f[prefix + "depthwise"](y)))
      y = f[prefix + "project"](y)
      taps[prefix + "project"] = y
      if prefix + "project_BN" not in f:
        break
      y = f[prefix + "project_BN"](y)
      x = x + y if stride == 1 and cin == cout else y
    return [taps[name] for name in UNET_TAPS]


class Upsample(nn.Sequential):
  """pix2pix upsample: ConvTranspose (no bias), BatchNorm, ReLU."""

  def __init__(self, cin: int, cout: int, bn_momentum: float):
    super().__init__(ConvTranspose3x3S2(cin, cout, bias=False), _bn(cout, bn_momentum), nn.ReLU())


class TorchUNet(nn.Module):
  """MobileNetV2 encoder + pix2pix decoder, NCHW in, (B, num_classes, H, W) logits out."""

  def __init__(self, num_classes: int = 3, alpha: float = 1.0,
               decoder_filters: Sequence[int] = (512, 256, 128, 64), encoder_bn_momentum: float = 0.999,
               decoder_bn_momentum: float = 0.99):
    super().__init__()
    self.encoder = MobileNetV2Encoder(alpha, encoder_bn_momentum)
    block_in = {prefix: c for prefix, c, _, _ in self.encoder.blocks}
    # Tap channels: block_k_expand_relu has 6 x block k's input channels; the bottleneck block_16's output.
    skips = [6 * block_in[name[:-len("expand_relu")]] for name in UNET_TAPS[:-1]][::-1]
    cin = self.encoder.blocks[-1][2]
    self.ups = nn.ModuleList()
    for filters, skip in zip(decoder_filters, skips):
      self.ups.append(Upsample(cin, filters, decoder_bn_momentum))
      cin = filters + skip
    self.logits = ConvTranspose3x3S2(cin, num_classes, bias=True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    *skips, x = self.encoder(x)
    for up, skip in zip(self.ups, reversed(skips)):
      x = torch.cat([up(x), skip], dim=1)
    return self.logits(x)

  def freeze_encoder(self) -> "TorchUNet":
    """The tutorial's setup: no encoder gradients (its backward is never built) and inference-mode BN."""
    self.encoder.requires_grad_(False)
    return self.train(self.training)

  def train(self, mode: bool = True) -> "TorchUNet":
    super().train(mode)
    if not next(self.encoder.parameters()).requires_grad:
      self.encoder.eval()
    return self


def load_jaxseg_variables(model: TorchUNet, variables: dict[str, Any]) -> TorchUNet:
  """Copies a jaxseg UNet's `{"params", "batch_stats"}` into `model` (same alpha, classes, filters).

  Args:
    model: the PyTorch model to fill.
    variables: jaxseg variables (arrays of any kind numpy can read).

  Returns:
    `model`. Raises ValueError naming the layer whose shape does not match.
  """
  params, stats = variables["params"], variables["batch_stats"]
  copies: list[tuple[torch.Tensor, np.ndarray, str]] = []

  def conv(module, p, name, transposed=False):
    k = np.asarray(p["kernel"])
    # Flax conv (kh, kw, in, out) -> torch (out, in, kh, kw); transposed and depthwise (kh, kw, C, 1)
    # -> (in, out, kh, kw) / (C, 1, kh, kw): both the same axis order.
    depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
    copies.append((module.weight, k.transpose((2, 3, 0, 1) if transposed or depthwise else (3, 2, 0, 1)), name))
    if "bias" in p:
      copies.append((module.bias, np.asarray(p["bias"]), name + "/bias"))

  def bn(module, p, s, name):
    for tensor, value in ((module.weight, p["scale"]), (module.bias, p["bias"]),
                          (module.running_mean, s["mean"]), (module.running_var, s["var"])):
      copies.append((tensor, np.asarray(value), name))

  for name, module in model.encoder.layers.items():
    if isinstance(module, nn.BatchNorm2d):
      bn(module, params["encoder"][name], stats["encoder"][name], name)
    else:
      conv(module, params["encoder"][name], name)
  for i, up in enumerate(model.ups):
    conv(up[0], params[f"up_{i}"]["conv_transpose"], f"up_{i}/conv_transpose", transposed=True)
    bn(up[1], params[f"up_{i}"]["bn"], stats[f"up_{i}"]["bn"], f"up_{i}/bn")
  conv(model.logits, params["logits"], "logits", transposed=True)
  with torch.no_grad():
    for tensor, value, name in copies:
      if tuple(tensor.shape) != value.shape:
        raise ValueError(f"{name}: PyTorch shape {tuple(tensor.shape)} != jaxseg {value.shape}")
      tensor.copy_(torch.from_numpy(np.array(value, np.float32)))
  return model


def make_train_step(model: TorchUNet, learning_rate: float = 1e-3, bf16: bool = False, compile_model: bool = False):
  """An Adam step on the decoder with jaxseg's loss; returns `step(images NCHW, labels) -> loss tensor`.

  Args:
    model: a TorchUNet (frozen encoder or not), on its device.
    learning_rate: Adam's (eps 1e-8 like optax's).
    bf16: compute under bfloat16 autocast (parameters, optimizer and loss stay float32).
    compile_model: `torch.compile` the model's forward (and so its backward).
  """
  device = next(model.parameters()).device
  trainable = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.Adam(trainable, lr=learning_rate, eps=1e-8, fused=device.type == "cuda")
  forward = torch.compile(model) if compile_model else model
  model.train()

  def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
      logits = forward(images)
    loss = F.cross_entropy(logits.float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()

  return step
