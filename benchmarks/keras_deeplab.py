"""DeepLabV3+ over an atrous MobileNetV2 in Keras (keras.layers): jaxseg's independent twin, for the
exactness tests and the CPU benchmark. Layers are named as jaxseg's (see `keras_models.from_keras_deeplab`)."""

import keras


def _schedule(output_stride):
  """{block: (stride, rate)} that differ from MobileNetV2's, written out from the DeepLabV3 paper's rule
  (stride 16: block_13 keeps the resolution, block_14-16 at rate 2; stride 8: block_6 and block_13 keep the
  resolution, block_7-13 at rate 2, block_14-16 at rate 4)."""
  if output_stride == 16:
    return {13: (1, 1), 14: (1, 2), 15: (1, 2), 16: (1, 2)}
  return {6: (1, 1), **dict.fromkeys(range(7, 14), (1, 2)), **dict.fromkeys(range(14, 17), (1, 4))}


def atrous_mobilenet_v2(alpha: float, height: int, width: int, output_stride: int) -> keras.Model:
  """keras.applications.MobileNetV2 (random weights) rebuilt from its config with DeepLab's strides and
  dilation rates."""
  base = keras.applications.MobileNetV2(input_shape=(height, width, 3), alpha=alpha, include_top=False,
                                        weights=None)
  config = base.get_config()
  for layer in config["layers"]:
    name, cfg = layer["config"]["name"], layer["config"]
    for block, (stride, rate) in _schedule(output_stride).items():
      prefix = f"block_{block}_"
      if name == prefix + "depthwise":
        cfg["strides"], cfg["dilation_rate"] = (stride, stride), (rate, rate)
        if stride == 1:
          cfg["padding"] = "same"
      elif name == prefix + "pad" and stride == 1:  # a stride-2 block that keeps the resolution
        cfg["padding"] = ((0, 0), (0, 0))
  model = keras.Model.from_config(config)
  model.set_weights(base.get_weights())
  return model


def build_deeplab(height: int, width: int, num_classes: int = 3, alpha: float = 1.0, output_stride: int = 16,
                  separable: bool = False, freeze_encoder: bool = False) -> keras.Model:
  """DeepLabV3+ (ASPP 256 filters, rates 6/12/18 at stride 16, image pooling, 48-channel low-level
  features, two 3x3 decoder convs, 1x1 logits, bilinear upsampling), random weights; with `freeze_encoder`
  the MobileNetV2 layers are not trained (jaxseg's default, as the tutorial's U-Net)."""
  base = atrous_mobilenet_v2(alpha, height, width, output_stride)
  if freeze_encoder:
    for layer in base.layers:
      layer.trainable = False
  high, low = base.get_layer("block_16_project_BN").output, base.get_layer("block_3_expand_relu").output
  L = keras.layers

  def conv_bn(x, name, filters, k=1, rate=1):
    if k == 3 and separable:
      x = L.DepthwiseConv2D(3, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_depthwise")(x)
      x = L.ReLU()(L.BatchNormalization(epsilon=1e-3, name=f"{name}_depthwise_bn")(x))
      x = L.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    else:
      x = L.Conv2D(filters, k, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_conv")(x)
    return L.ReLU()(L.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x))

  rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
  branches = [conv_bn(high, "aspp_0", 256)] + [conv_bn(high, f"aspp_{i + 1}", 256, 3, r)
                                              for i, r in enumerate(rates)]
  pooled = conv_bn(L.GlobalAveragePooling2D(keepdims=True)(high), "aspp_pool", 256)
  hs, ws = height // output_stride, width // output_stride
  branches.append(L.UpSampling2D((hs, ws))(pooled))
  x = conv_bn(L.Concatenate()(branches), "aspp_project", 256)
  x = L.UpSampling2D((output_stride // 4, output_stride // 4), interpolation="bilinear")(x)
  x = L.Concatenate()([x, conv_bn(low, "low_level", 48)])
  x = conv_bn(conv_bn(x, "decoder_0", 256, 3), "decoder_1", 256, 3)
  x = L.Conv2D(num_classes, 1, name="logits")(x)
  x = L.UpSampling2D((4, 4), interpolation="bilinear")(x)
  return keras.Model(base.input, x)
