"""Every default of the project outside a training run's configuration, written once, each with a reason.

The settings of a training run (data, model, solver, run, eval) are the schema of :mod:`config.schema`,
whose ``DEFAULTS`` scripts read (``DEFAULTS.data.batch_size``); the tools' own settings are here.
"""

EXAMPLE_MEAN_PIXELS = (123, 117, 104)          # MXNet's SSD example's input mean: its checkpoints (no -config.json)

LABEL_PAD_VALUE = -1.0                         # label rows beyond an image's objects are filled with this

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

SYNTHETIC_CLUTTER = dict(                      # tools/synthetic_clutter.py: a second set, unlike SYNTHETIC's
    classes=('hexagon', 'ellipse', 'arrow', 'crescent', 'diamond'),  # shape classes drawn
    num_trainval=2000,                         # images in the trainval split
    num_test=500,                              # images in the test split
    shorter_side=(240, 480),                   # shorter image side range in pixels
    max_aspect=2.0,                            # the longer side is 1..max_aspect times the shorter
    portrait_share=0.4,                        # share of images taller than wide
    max_objects=6,                             # objects per image: 1..max_objects
    object_size=(0.05, 0.60),                  # object diameter range (log-uniform), fractions of the shorter side
    distractors=(2, 8),                        # unannotated look-alike shapes per image: LOW..HIGH
    seed=0,                                    # generator seed; equal seeds give equal files
    year='2007',                               # written as <root>/VOC<year>/, the folder the VOC parser reads
    quality=85,                                # JPEG quality of the generated images
    num_thread=None,                           # worker processes; None: one per available core
)

CLASSES_SUFFIX = '.classes'                    # class list written next to a .lst: <target>.classes

INITIALIZER = dict(rnd_type='gaussian', factor_type='out', magnitude=2)   # Xavier init of new weights
FP16_LOSS_SCALE = 128.0                        # float16's static loss scale (MXNet's Module has no dynamic one)

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
