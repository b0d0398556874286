"""The default config, a comment per field: the TensorFlow segmentation tutorial's model and training on
Oxford-IIIT Pet at 128 px (what `jaxseg train` runs without --config).

The recipes in the repository's configs/ start from it and override a few fields. Every field can be
overridden from the command line, e.g. `--config.batch_size=32 --config.data.source=folder`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default config."""
  config = ml_collections.ConfigDict()
  config.name = "default"  # Run name; the default workdir is runs/<name>.

  config.model = ml_collections.ConfigDict()
  config.model.name = "unet"  # Key of jaxseg.models.MODELS: "unet", "deeplabv3plus", "segformer", "linear".
  config.model.backbone = "mobilenet_v2"  # The encoder: a key of jaxseg.models.backbones.BACKBONES
  #   ("mobilenet_v2", the Keras one, or its widths "mobilenet_v2_0.35" .. "mobilenet_v2_1.4"; "resnet50", ...).
  config.model.backbone_weights = "imagenet"  # "imagenet" (the Keras download for MobileNetV2, the keras-hub
  #   ImageNet preset otherwise), a keras-hub preset name or save_to_preset directory, a Keras weights file
  #   (MobileNetV2), or "none" (random).
  config.model.input_scale = ()  # Per-channel scale and offset from [0, 255] pixels to what the backbone's
  config.model.input_offset = ()  # weights expect (a preset's image converter); () = the backbone's own.
  config.model.output_stride = 16  # DeepLabV3+ only: encoder output stride, 16 or 8 (atrous convolutions).
  config.model.separable = False  # DeepLabV3+ only: depthwise-separable ASPP and decoder 3x3 convs.
  config.model.decoder_dim = 0  # SegFormer only: its decoder's width (0: the paper's for MiT, else 256).
  config.model.aux_stride = 0  # An auxiliary head on the encoder's features at this stride (e.g. 16), trained
  #   with loss.aux_weight times its cross-entropy and unused at inference (PSPNet's; 0 = none).
  config.model.linear_layers = 4  # Linear head only: how many of the DINOv2 encoder's last layers it reads.
  config.model.encoder_bn_momentum = 0.999  # MobileNetV2's BatchNorm momentum (Keras's; keras-hub's keep theirs).
  config.model.decoder_bn_momentum = 0.99  # Decoder BatchNorm momentum (Keras default).
  config.model.decoder_bn_debias = True  # Eval/predict with bias-corrected decoder BN averages (short runs).
  # Which forms of the convolutions, layer norms and softmaxes run (the same maths): "gemm" (the fast forms),
  #   "xla" (plain lax), "lite" (for LiteRT export), "auto" (gemm; xla on TPU). Was `conv_impl`.
  config.model.kernels = "auto"
  config.num_classes = 3  # Output classes (= len(data.class_names)): pet, background, boundary.
  config.image_size = 128  # Examples are resized to this square size (any size; padded to multiples of 32).
  config.image_height = 0  # Non-square stored size: height (0 = image_size), e.g. CamVid's 360.
  config.image_width = 0  # Non-square stored size: width (0 = image_size), e.g. CamVid's 480.
  config.freeze_encoder = True  # Train the decoder only (the tutorial); False fine-tunes the encoder too.
  config.encoder_bn_train = False  # Encoder BatchNorm uses batch statistics (only with freeze_encoder=False).
  # "float32", "bfloat16", "mixed_bfloat16" (bf16 GEMM inputs) or "auto" (see jaxseg.runtime.precision).
  config.dtype = "auto"

  config.data = ml_collections.ConfigDict()
  config.data.source = "tfds"  # "tfds" (oxford_iiit_pet), "folder" (extracted dataset) or "synthetic".
  config.data.tfds_name = "oxford_iiit_pet:4.*.*"  # tfds dataset name and version.
  config.data.image_key = "image"  # The tfds dataset's image feature ...
  config.data.mask_key = "segmentation_mask"  # ... and its mask feature (e.g. Oxford-IIIT Pet's trimaps).
  config.data.data_dir = ""  # tfds data_dir ("" = tfds default, ~/tensorflow_datasets).
  config.data.download = True  # Let tfds download and prepare the dataset if it is not there yet.
  config.data.tfds_file_format = "array_record"  # How tfds prepares a dataset it downloads: "array_record" (read
  #   without TensorFlow, and at random by the stream pipeline) or "tfrecord" (read through TensorFlow, the
  #   `jaxseg[tf]` extra). A dataset already prepared is read in the format it has.
  config.data.root = ""  # For source="folder": the dataset directory (see data.layout).
  config.data.layout = "auto"  # Folder layout: "lists" (<split>.txt of 'image mask' lines), "dirs" (image and
  #   mask directories searched recursively, paired by file name), "voc" (ImageSets/Segmentation/<split>.txt
  #   ids), "oxford_pet" (the Oxford-IIIT Pet release), "auto" (lists, oxford_pet or dirs, as the root holds).
  config.data.image_dir = "{split}"  # layout="dirs" or "voc": image directory under root ({split} = the split).
  config.data.mask_dir = "{split}annot"  # layout="dirs" or "voc": mask directory under root.
  config.data.image_suffix = ""  # layout="dirs": image file stems end with this (e.g. Cityscapes' "_leftImg8bit"),
  config.data.mask_suffix = ""  # and mask file stems with this instead (e.g. "_gtFine_labelIds", CamVid's "_L").
  # The dataset's labels (Oxford-IIIT Pet trimaps: 1 pet, 2 background, 3 boundary).
  config.data.class_names = ("pet", "background", "boundary")  # One name per training class.
  config.data.class_colors = ((245, 130, 48), (30, 60, 140), (255, 225, 25))  # RGB per class in pictures.
  config.data.class_map = {"1": 0, "2": 1, "3": 2}  # Stored label -> class id or "ignore" ({} = identity).
  config.data.ignore_label = -1  # A stored label value that is ignored in loss and metrics (-1 = none).
  config.data.ignore_color = (0, 0, 0)  # RGB of ignored pixels in pictures.
  config.data.mask_format = "index"  # "index" (gray or palette PNG values) or "color" (RGB via color_table).
  config.data.color_table = ""  # mask_format="color": CSV of name,r,g,b (relative to root); class_map keys
  #   may then be the table's names.
  config.data.eval_resolution = "original"  # Metrics at each label's own resolution, or "model" (stored size).
  config.data.train_split = "train"  # Split to train on ("train" = Oxford trainval, 3,680 images).
  config.data.eval_split = "test"  # Split to evaluate on ("test", 3,669 images).
  config.data.holdout = ""  # source="folder": a file-name pattern (e.g. "0006R0_*") of training examples held
  #   out for model selection: training skips them, eval_split="holdout" scores them.
  config.data.max_train_examples = 0  # Use only the first N training examples (0 = all).
  config.data.max_eval_examples = 0  # Use only the first N eval examples (0 = all).
  config.data.synthetic_train_size = 512  # Examples in the synthetic train split.
  config.data.synthetic_eval_size = 128  # Examples in the synthetic eval split.
  config.data.skip_bad = False  # Skip (and count) unreadable or inconsistent examples instead of failing.
  config.data.cache_dir = ""  # pipeline="memory": where to cache decoded, resized arrays ("" = memory only).
  config.data.pipeline = "auto"  # "memory" (decode every example once and hold it), "stream" (Grain workers
  #   read examples as training consumes them; memory bounded by workers x prefetch x batch) or "auto"
  #   (memory for synthetic data, tfds and folder splits up to 2 GiB at the stored size; stream otherwise).
  config.data.workers = -1  # pipeline="stream": worker processes (-1 = the cores available, 0 = in-process).
  config.data.prefetch = 2  # pipeline="stream": batches each worker prepares ahead.
  config.data.scale = (0, 0)  # Base (long, short) sides, e.g. (2048, 1024): examples keep their aspect ratio,
  #   training rescales relative to it by augment.scale_min..max and crops, evaluation fits it; (0, 0): every
  #   example is resized to the stored size (image_size / image_height x image_width).

  config.batch_size = 64  # Global train batch size (split over all devices).
  config.eval_batch_size = 64  # Global eval batch size.
  config.num_epochs = 20  # Epochs to train.
  config.optimizer = "adam"  # "adam" (the Keras default), "adamw" (decoupled weight decay) or "sgd".
  config.learning_rate = 1e-3  # Peak learning rate (1e-3: the Keras default for Adam).
  config.momentum = 0.9  # optimizer="sgd": momentum (0 = none).
  config.nesterov = False  # optimizer="sgd": Nesterov momentum.
  config.weight_decay = 0.0  # On kernels only: adamw decoupled (times the learning rate), adam and sgd as L2.
  config.encoder_lr_scale = 1.0  # With freeze_encoder=False: the encoder's learning rate is this times it.
  config.lr_schedule = "constant"  # "constant", "cosine" or "poly" ((1 - t/T)^lr_power): to 0 over num_epochs.
  config.lr_power = 0.9  # lr_schedule="poly": the power.
  config.warmup_epochs = 0.0  # Linear warm-up to learning_rate over these epochs (may be fractional) first.
  config.random_flip = True  # Random horizontal flips of image and mask together.
  config.augment = ml_collections.ConfigDict()  # More augmentations (each off by default), keyed by step.
  config.augment.scale_min = 1.0  # Random scale range (log-uniform), e.g. 0.5-2.0; with a random crop.
  config.augment.scale_max = 1.0
  config.augment.crop_height = 0  # Training crop (multiples of 32; 0 = the whole padded example).
  config.augment.crop_width = 0
  config.augment.brightness = 0.0  # Photometric jitter: brightness +-fraction of 255.
  config.augment.contrast = 0.0  # Contrast factor in 1 +- this.
  config.augment.saturation = 0.0  # Saturation factor in 1 +- this.

  config.loss = ml_collections.ConfigDict()
  config.loss.name = "cross_entropy"  # "cross_entropy", "ohem_cross_entropy", "lovasz" (Lovasz-softmax),
  #   "dice", "cross_entropy+dice" or "cross_entropy+lovasz".
  config.loss.class_weights = "none"  # Cross-entropy class weights: "none", "median_frequency" (SegNet's,
  #   from the train split), "sqrt_frequency" (their square roots: gentler on rare classes) or "w0,w1,...".
  config.loss.ohem_threshold = 0.7  # ohem_cross_entropy: pixels whose true-class probability is below this,
  config.loss.ohem_min_kept = 100000  # and at least this many of the batch's hardest, make the loss.
  config.loss.label_smoothing = 0.0  # Cross-entropy targets (1 - this) on the label plus this / classes on
  #   each class (0 = one-hot).
  config.loss.aux_weight = 0.4  # With model.aux_stride: the auxiliary head's cross-entropy weight.
  config.loss.lovasz_bins = 0  # Lovasz terms: 0 sorts every pixel's error; N ranks them in N equal-width bins
  #   instead (a histogram, no sort: at most 1 / N below the sorted loss, e.g. 65536; faster on large batches).
  config.seed = 0  # Seeds init, shuffling and augmentations: the same seed gives the same run.
  config.ema_decay = 0.0  # Evaluate, predict and export with an exponential moving average of the weights
  #   (e.g. 0.999; 0 = off), updated every step and kept in checkpoints.

  config.eval = ml_collections.ConfigDict()  # How evaluation, --mode predict and jaxseg.load turn an image
  #   into logits; anything but the default scores evaluation images one at a time (no loss reported).
  config.eval.mode = "whole"  # "whole" (resized to the stored size) or "slide" (windows of the stored size
  #   over the photo at its own scale, logits averaged where they overlap).
  config.eval.stride = (0, 0)  # slide: rows and columns between windows (0: two thirds of the window).
  config.eval.scales = (1.0,)  # Test-time scales (of the stored size, or of the photo with slide); summed.
  config.eval.flip = False  # Test-time horizontal flip too (its logits flipped back and summed).

  config.keep_checkpoints = 3  # Orbax keeps this many newest per-epoch checkpoints.
  config.checkpoint_every_steps = 0  # Also checkpoint every N train steps inside epochs (0 = at epoch ends).
  config.target_accuracy = 0.0  # Stop after the first epoch whose pixel accuracy on eval_split reaches this (0 = off).
  config.patience = 0  # Stop after this many epochs without a new best val accuracy (0 = off).
  config.compilation_cache = ""  # JAX's persistent compilation cache, so that a rerun, a resume or an eval
  #   compiles nothing again: "" = ~/.cache/jaxseg/xla (or $XDG_CACHE_HOME/jaxseg/xla), a directory, or "none".
  config.log_every_steps = 20  # Fetch train metrics to the host (progress bar) every N steps.
  config.num_samples = 3  # Validation images drawn in samples/epoch_XX.png panels (0 = none).
  config.distributed = ml_collections.ConfigDict()  # Several processes training together (README "Scale out").
  config.distributed.enabled = False  # Join them with the cluster's auto-detection (TPU pods, SLURM, ...).
  config.distributed.coordinator = ""  # Or explicitly: "host:port" of process 0 (or JAX_COORDINATOR_ADDRESS),
  config.distributed.num_processes = 0  # the number of processes (or JAX_NUM_PROCESSES),
  config.distributed.process_id = -1  # and this one's index, 0 .. num_processes - 1 (or JAX_PROCESS_ID).
  return config
