"""Output stride by dilation: which layers keep their stride and at what rate each one runs."""


class Strides:
  """Where a network is, stride by stride, at an output stride: each layer's (stride, dilation)."""

  def __init__(self, output_stride: int):
    self.output_stride, self.nominal, self.actual, self.rate, self.previous_rate = output_stride, 1, 1, 1, 1

  def step(self, stride: int) -> tuple[int, int]:
    """(the stride to use, the dilation of later layers) for a layer the architecture gives `stride`; the
    layer itself runs at `previous_rate`."""
    self.previous_rate = self.rate
    self.nominal *= stride
    if self.actual * stride > self.output_stride:
      self.rate *= stride
      return 1, self.rate
    self.actual *= stride
    return stride, self.rate
