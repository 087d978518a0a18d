"""Named augmentation presets for ``mx.io.ImageDetRecordIter`` (passed through as keyword arguments).

``ssd_train`` is the SSD paper's recipe: five random-crop samplers with minimum IoU .1/.3/.5/.7/.9 (the whole
image is kept with probability 1/6), zoom-out padding up to 4x, colour jitter, mirror and a random
interpolation method. ``mirror`` resizes, mirrors half of the images and shuffles: for short runs from scratch,
where the full recipe's hard crops and zoom-outs cost more epochs than there are. ``val`` does nothing but
resize.
"""
import copy

_CROP_MIN_OVERLAPS = (0.1, 0.3, 0.5, 0.7, 0.9)
_NUM_CROPS = len(_CROP_MIN_OVERLAPS)

SSD_TRAIN = dict(
    rand_crop_prob=_NUM_CROPS / (_NUM_CROPS + 1.0),  # 1 of 6 choices keeps the whole image
    num_crop_sampler=_NUM_CROPS,
    min_crop_overlaps=_CROP_MIN_OVERLAPS,           # sampler i: crop IoU with some box >= this
    max_crop_overlaps=(1.0,) * _NUM_CROPS,
    min_crop_scales=(0.3,) * _NUM_CROPS,            # crop side as a fraction of the image side
    max_crop_scales=(1.0,) * _NUM_CROPS,
    min_crop_aspect_ratios=(0.5,) * _NUM_CROPS,
    max_crop_aspect_ratios=(2.0,) * _NUM_CROPS,
    max_crop_trials=(25,) * _NUM_CROPS,
    crop_emit_mode='center',                        # drop boxes whose centre falls outside the crop
    rand_pad_prob=0.5,                              # zoom out: place the image on a larger canvas
    max_pad_scale=4.0,
    fill_value=127,                                 # canvas colour (about the mean pixel)
    max_random_hue=18, random_hue_prob=0.5,
    max_random_saturation=32, random_saturation_prob=0.5,
    max_random_illumination=32, random_illumination_prob=0.5,
    max_random_contrast=0.5, random_contrast_prob=0.5,
    rand_mirror_prob=0.5,
    inter_method=10,                                # 10: a random interpolation method per image
    shuffle=True,                                   # alone, this mixes images only within one 8 MB read
    shuffle_chunk_size=4,                           # so also visit the file's 4 MB parts in a new order each epoch
)

VAL = dict(
    inter_method=1,                                 # bilinear resize only
    shuffle=False,
    round_batch=False,                              # every epoch reads every image once (True skips some)
)

MIRROR = dict(
    rand_mirror_prob=0.5,                           # shapes (and most objects) look alike mirrored
    inter_method=1,                                 # bilinear resize
    shuffle=True,                                   # a new image order every epoch, as in ssd_train
    shuffle_chunk_size=4,
)

PRESETS = {
    'ssd_train': SSD_TRAIN,
    'mirror': MIRROR,
    'val': VAL,
}


def augmentation_preset(name, **overrides):
    """Return a copy of preset ``name`` with ``overrides`` applied.

    Raises
    ------
    KeyError
        With the valid names, when ``name`` is unknown.
    """
    if name not in PRESETS:
        raise KeyError('unknown augmentation preset %r; choose one of: %s' % (name, ', '.join(sorted(PRESETS))))
    params = copy.deepcopy(PRESETS[name])
    params.update(overrides)
    return params
