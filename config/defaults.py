"""Every default of the project, written once, each with a one-line reason.

Library code takes plain keyword arguments; entry scripts read their defaults from here. Later a YAML
config with ``--opts KEY VALUE`` overrides is merged on top of these dictionaries.
"""

EXAMPLE_MEAN_PIXELS = (123, 117, 104)          # MXNet's SSD example's input mean: its checkpoints (no -config.json)

DATA = dict(
    data_shape=300,                            # network input side in pixels (square)
    batch_size=32,                             # images per batch, summed over devices
    mean_pixels=(123.68, 116.779, 103.939),    # ImageNet RGB means, subtracted by the iterator
    std_pixels=(1.0, 1.0, 1.0),                # no scaling: backbones here were trained on 0..255 minus mean
    label_pad_value=-1.0,                      # label rows beyond an image's objects are filled with this
    label_width=None,                          # max objects per image; None: computed from the .rec files
)

PACK = dict(
    quality=95,                                # JPEG quality when re-encoding in im2rec
    encoding='.jpg',                           # image encoding in the .rec when re-encoding
    resize=0,                                  # shorter side resized to this when packing; 0 keeps the size
    pass_through=False,                        # copy the image bytes unchanged instead of re-encoding
    shuffle=True,                              # shuffle the .lst lines (training sets)
    seed=0,                                    # seed for the .lst shuffle
)

SYNTHETIC = dict(
    classes=('circle', 'square', 'triangle', 'star', 'cross', 'ring'),  # shape classes drawn
    num_trainval=2000,                         # images in the trainval split
    num_test=500,                              # images in the test split
    min_side=256,                              # shortest image side in pixels
    max_side=512,                              # longest image side in pixels
    max_objects=8,                             # objects per image: 1..max_objects
    object_size=(0.10, 0.60),                  # object diameter range, fractions of the shorter image side
    small_share=0.15,                          # share of objects drawn 0.05..0.10 of the shorter side instead
    seed=0,                                    # generator seed; equal seeds give equal files
    year='2007',                               # written as <root>/VOC<year>/, the folder the VOC parser reads
    quality=90,                                # JPEG quality of the generated images
    num_thread=None,                           # worker processes; None: one per available core
)

CLASSES_SUFFIX = '.classes'                    # class list written next to a .lst: <target>.classes

AMP_MODES = ('none', 'bf16', 'fp16')          # train.py --amp: float32, bfloat16 (CPU), float16 (GPU)

TRAIN = dict(
    train_path='data/train.rec',               # training .rec (its .classes next to it names the classes)
    train_list='',                             # optional .lst whose labels replace those in the train .rec
    num_example=None,                          # MXNet example's image count: ignored, the .rec's count is used
    val_path='data/val.rec',                   # validation .rec; '' skips validation
    val_list='',                               # optional .lst whose labels replace those in the val .rec
    network='vgg16_reduced',                   # a name of symbol.symbol_factory.list_networks()
    gpus=None,                                 # GPU ids '0,1'; '' or --cpu: CPU; None: all visible GPUs, else CPU
    prefix=None,                               # checkpoint prefix; None: model/ssd_<network>_<data_shape>
    resume=-1,                                 # epoch to resume from (weights, optimizer state, LR position)
    finetune=-1,                               # epoch of --prefix to fine-tune from (heads reset on new classes)
    pretrained='model/vgg16_reduced',          # MXNet checkpoint prefix or GluonCV .params; '' from scratch
    epoch=1,                                   # epoch of the pretrained MXNet checkpoint
    begin_epoch=0,                             # first epoch when not resuming (LR steps already passed apply)
    end_epoch=240,                             # train until this epoch (exclusive of later ones)
    frequent=20,                               # a plain log line every this many batches
    lr=0.002,                                  # base learning rate
    momentum=0.9,                              # SGD momentum (Adam: beta1)
    wd=0.0005,                                 # weight decay
    optimizer='sgd',                           # 'sgd' or 'adam'
    lr_steps=(80, 160),                        # epochs at which the LR is multiplied by lr_factor
    lr_factor=0.1,                             # LR multiplier at each step
    warmup_epochs=0.0,                         # linear LR warm-up from 0, in epochs (may be fractional)
    freeze='^(conv1_|conv2_).*',               # parameters kept fixed when starting from loaded weights
    log='train.log',                           # log file ('' for none)
    monitor=0,                                 # print mx.mon.Monitor statistics every N batches; 0 off
    pattern='.*',                              # names of the arrays the monitor prints
    num_class=None,                            # None: the count in the train .rec's .classes file
    class_names=None,                          # None: the train .rec's .classes file
    nms=None,                                  # NMS IoU threshold; None: symbol/multibox.py NMS['nms_thresh']
    force_nms=None,                            # suppress across classes; None: NMS['force_suppress']
    overlap=0.5,                               # IoU for a detection to count as correct in validation
    use_difficult=False,                       # score difficult objects as ordinary ones in validation
    voc07=True,                                # 11-point VOC07 AP in validation (False: area under the curve)
    val_interval=1,                            # validate every this many epochs (and after the last)
    kv_store='local',                          # MXNet kvstore for multi-device training
    seed=None,                                 # seed of MXNet, NumPy and the shuffle; None: unseeded
    train_preset='ssd_train',                  # augmentation preset of the training iterator
    initializer=dict(rnd_type='gaussian', factor_type='out', magnitude=2),  # Xavier init of new weights
    background_prior=0.75,                     # initial background probability: 3 mined negatives : 1 positive
    head_init_std=0.01,                        # sd of new prediction-head weights (RetinaNet's); None: Xavier
    anchor_overlap=None,                       # IoU from which an anchor is a positive; None: symbol/multibox.py
    network_overrides=None,                    # settings replacing symbol_factory's (a recipe's layout); None: none
    overwrite=False,                           # a new run may not replace checkpoints an earlier run left
    recipe='',                                 # name of the config/recipes.py recipe the run started from
    amp='none',                                # mixed precision: 'none', 'bf16' (CPUs with AVX-512), 'fp16' (GPUs)
    loss_scale=None,                           # static loss scale; None: fp16_loss_scale under fp16, else 1
    fp16_loss_scale=128.0,                     # float16's static loss scale (MXNet's Module has no dynamic one)
)

DETECT = dict(                                 # demo.py: detections drawn onto images
    out='output/demo_detections',              # folder of the drawn pictures and detections.json
    thresh=0.5,                                # lowest score drawn and listed
    min_box_pixels=1.0,                        # a box narrower or lower than this many pixels is no detection
    batch_size=8,                              # images per forward pass (fewer when there are fewer)
    timer=True,                                # print the detection time (MXNet's example did; --no-timer)
    max_frames=100,                            # --camera stops after this many frames
    save_every=10,                             # --camera without a display saves every N-th frame
)

EVALUATE = dict(                               # evaluate.py
    coco_canvas=1000,                          # pixels: normalized boxes x this give COCO boxes (IoU is scale-free)
    coco_max_detections=100,                   # per image and class: COCOeval's largest maxDets
)

DEPLOY = dict(                                 # deploy.py
    file_tag='deploy_',                        # deploy files: <dir of prefix>/deploy_<basename of prefix>...
    onnx_pin='onnx==1.14.1',                   # MXNet 1.9.1's exporter uses onnx.mapping (gone in onnx 1.19)
    onnx_batch=1,                              # the ONNX graph's fixed batch size
)

BENCHMARK = dict(                              # benchmark_score.py
    batch_sizes=(1, 8, 32),                    # single image, small and large batches
    num_class=20,                              # classes of a randomly initialised network (PASCAL VOC's)
    num_batches=20,                            # timed batches per batch size; the median is reported
    warmup_batches=3,                          # untimed batches first (allocation, MKLDNN primitive creation)
)

QUANTIZE = dict(                               # quantization.py
    num_calib_batches=5,                       # calibration batches (MXNet's SSD example's value)
    calib_mode='naive',                        # min/max ranges; 'entropy' was slower and no closer here
    quantized_dtype='auto',                    # int8 for signed tensors, uint8 after ReLU
)
