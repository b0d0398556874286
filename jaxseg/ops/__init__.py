"""Convolution kernels, layer normalization and softmax in plain JAX (no Flax): fast forms for CPU and GPU, each beside
its `lax` reference, and the one dispatch on `kernels` (`jaxseg.ops.dispatch`). See jaxseg/ops/README.md."""

from jaxseg.ops.common import gemm
from jaxseg.ops.dispatch import (
                                 KERNELS,
                                 conv3x3,
                                 conv_transpose3x3_s2,
                                 depthwise_conv,
                                 depthwise_conv3x3,
                                 layer_norm,
                                 lovasz_extension,
                                 max_pool,
                                 pointwise_conv,
                                 resolve_kernels,
                                 softmax_last,
                                 stem_conv3x3,
                                 strided_conv,
                                 upsample_bilinear,
)

__all__ = ["KERNELS", "conv3x3", "conv_transpose3x3_s2", "depthwise_conv", "depthwise_conv3x3", "gemm", "layer_norm",
           "lovasz_extension", "max_pool", "pointwise_conv", "resolve_kernels", "softmax_last", "stem_conv3x3",
           "strided_conv", "upsample_bilinear"]
