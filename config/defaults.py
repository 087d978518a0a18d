"""Every default of the project, written once, each with a one-line reason.

Library code takes plain keyword arguments; entry scripts read their defaults from here. Later a YAML
config with ``--opts KEY VALUE`` overrides is merged on top of these dictionaries.
"""

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
    seed=0,                                    # generator seed; equal seeds give equal files
    year='2007',                               # written as <root>/VOC<year>/, the folder the VOC parser reads
    quality=90,                                # JPEG quality of the generated images
    num_thread=None,                           # worker processes; None: one per available core
)

CLASSES_SUFFIX = '.classes'                    # class list written next to a .lst: <target>.classes
