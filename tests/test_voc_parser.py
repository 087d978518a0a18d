"""dataset/pascal_voc.py on hand-written annotation files, one quirk of real VOC data per test.

Expected numbers follow the documented convention: ``(v - 1) / size`` for each 1-based pixel coordinate.
"""
import os

import cv2
import numpy as np
import pytest

from config.errors import UserError
from dataset.pascal_voc import VOC_CLASSES, load_pascal_voc

DOG, PERSON = VOC_CLASSES.index('dog'), VOC_CLASSES.index('person')


def box_xml(xmin, ymin, xmax, ymax):
    return ('<bndbox><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax><ymax>%s</ymax></bndbox>'
            % (xmin, ymin, xmax, ymax))


def object_xml(name, box, difficult='0', extra=''):
    difficult_xml = '' if difficult is None else '<difficult>%s</difficult>' % difficult
    return '<object><name>%s</name><pose>Left</pose>%s%s%s</object>' % (name, difficult_xml, extra, box_xml(*box))


def annotation_xml(objects, size=(200, 100)):
    size_xml = '' if size is None else '<size><width>%d</width><height>%d</height><depth>3</depth></size>' % size
    return '<annotation><folder>VOC2007</folder><filename>x.jpg</filename>%s%s</annotation>' % (
        size_xml, ''.join(objects))


def write_voc(root, images, year=2007, image_set='trainval', classes=None):
    """``images``: {image id: (xml text or None, (width, height) of the JPEG or None)}."""
    voc_dir = os.path.join(str(root), 'VOC%s' % year)
    for sub in ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main')):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    for image_id, (xml, image_size) in images.items():
        if xml is not None:
            with open(os.path.join(voc_dir, 'Annotations', image_id + '.xml'), 'w') as handle:
                handle.write(xml)
        if image_size is not None:
            width, height = image_size
            cv2.imwrite(os.path.join(voc_dir, 'JPEGImages', image_id + '.jpg'), np.zeros((height, width, 3), np.uint8))
    with open(os.path.join(voc_dir, 'ImageSets', 'Main', image_set + '.txt'), 'w') as handle:
        handle.write(''.join(image_id + '\n' for image_id in images))
    if classes is not None:
        with open(os.path.join(voc_dir, 'classes.txt'), 'w') as handle:
            handle.write(''.join(name + '\n' for name in classes))
    return str(root)


def load_one(tmp_path, objects, size=(200, 100), image_size=(200, 100), **kwargs):
    root = write_voc(tmp_path, {'000001': (annotation_xml(objects, size), image_size)})
    return load_pascal_voc(root, 2007, 'trainval', **kwargs)


def test_integer_box_is_shifted_by_one_and_normalized(tmp_path):
    imdb = load_one(tmp_path, [object_xml('dog', (21, 11, 120, 61))])
    assert imdb.image_paths == ['VOC2007/JPEGImages/000001.jpg']
    # (21-1)/200, (11-1)/100, (120-1)/200, (61-1)/100
    np.testing.assert_allclose(imdb.labels[0], [[DOG, 0.1, 0.1, 0.595, 0.6, 0]], atol=1e-6)


def test_fractional_coordinates(tmp_path):
    imdb = load_one(tmp_path, [object_xml('dog', ('50.5', '25.5', '100.5', '75.5'))])
    np.testing.assert_allclose(imdb.labels[0], [[DOG, 0.2475, 0.245, 0.4975, 0.745, 0]], atol=1e-6)


def test_missing_difficult_reads_as_zero_and_difficult_can_be_left_out(tmp_path):
    objects = [object_xml('dog', (21, 11, 41, 31), difficult=None), object_xml('dog', (1, 1, 101, 51), '1')]
    kept = load_one(tmp_path / 'a', objects)
    np.testing.assert_allclose(kept.labels[0], [[DOG, 0.1, 0.1, 0.2, 0.3, 0], [DOG, 0, 0, 0.5, 0.5, 1]], atol=1e-6)
    dropped = load_one(tmp_path / 'b', objects, use_difficult=False)
    np.testing.assert_allclose(dropped.labels[0], [[DOG, 0.1, 0.1, 0.2, 0.3, 0]], atol=1e-6)
    assert dropped.stats['difficult objects left out'] == 1


def test_only_the_objects_own_bndbox_counts(tmp_path):
    parts = ('<part><name>head</name>%s</part><part><name>hand</name>%s</part>'
             '<actions><jumping>1</jumping><other>0</other></actions><point><x>40</x><y>30</y></point>'
             % (box_xml(81, 41, 91, 51), box_xml(5, 5, 9, 9)))
    imdb = load_one(tmp_path, [object_xml('person', (1, 1, 101, 51), extra=parts)])
    np.testing.assert_allclose(imdb.labels[0], [[PERSON, 0, 0, 0.5, 0.5, 0]], atol=1e-6)


@pytest.mark.parametrize('size', [None, (0, 0)], ids=['no size block', 'zero size'])
def test_missing_size_block_reads_the_image(tmp_path, size):
    imdb = load_one(tmp_path, [object_xml('dog', (17, 9, 97, 49))], size=size, image_size=(160, 80))
    # (17-1)/160, (9-1)/80, (97-1)/160, (49-1)/80
    np.testing.assert_allclose(imdb.labels[0], [[DOG, 0.1, 0.1, 0.6, 0.6, 0]], atol=1e-6)
    assert imdb.stats['image sizes read from the image (no usable <size> in the XML)'] == 1


def test_boxes_touching_or_crossing_the_border_are_clipped_and_counted(tmp_path):
    touching = object_xml('dog', (1, 1, 200, 100))      # the whole image, VOC style
    crossing = object_xml('dog', (0, 51, 250, 100))     # 0 is outside 1-based coordinates; 250 > width
    imdb = load_one(tmp_path, [touching, crossing])
    np.testing.assert_allclose(imdb.labels[0], [[DOG, 0, 0, 0.995, 0.99, 0],
                                                [DOG, 0, 0.5, 1.0, 0.99, 0]], atol=1e-6)
    assert imdb.stats['boxes clipped to the image'] == 1


def test_names_with_stray_whitespace_and_case_match(tmp_path):
    imdb = load_one(tmp_path, [object_xml('\n  Dog \t', (21, 11, 41, 31)), object_xml('PERSON', (21, 11, 41, 31))])
    np.testing.assert_array_equal(imdb.labels[0][:, 0], [DOG, PERSON])


def test_unknown_classes_and_degenerate_boxes_are_skipped_and_counted(tmp_path):
    objects = [object_xml('unicorn', (21, 11, 41, 31)), object_xml('dog', (41, 11, 41, 31)),
               object_xml('dog', (41, 31, 21, 11)), object_xml('dog', (21, 11, 41, 31))]
    imdb = load_one(tmp_path, objects)
    np.testing.assert_allclose(imdb.labels[0], [[DOG, 0.1, 0.1, 0.2, 0.3, 0]], atol=1e-6)
    assert imdb.stats["objects of unknown class 'unicorn' skipped"] == 1
    assert imdb.stats['degenerate boxes skipped (xmax <= xmin or ymax <= ymin)'] == 2


def test_images_without_objects_are_kept(tmp_path):
    root = write_voc(tmp_path, {'a': (annotation_xml([]), (200, 100)),
                                'b': (annotation_xml([object_xml('dog', (21, 11, 41, 31))]), (200, 100))})
    imdb = load_pascal_voc(root, '2007', 'trainval')
    assert imdb.image_paths == ['VOC2007/JPEGImages/a.jpg', 'VOC2007/JPEGImages/b.jpg']
    assert [objects.shape for objects in imdb.labels] == [(0, 6), (1, 6)]
    assert imdb.stats['images with no objects'] == 1


@pytest.mark.parametrize('missing, named', [('xml', 'Annotations/a.xml'), ('image', 'JPEGImages/a.jpg')])
def test_missing_xml_or_image_is_a_user_error_naming_the_file(tmp_path, missing, named):
    xml = None if missing == 'xml' else annotation_xml([])
    root = write_voc(tmp_path, {'a': (xml, None if missing == 'image' else (200, 100))})
    with pytest.raises(UserError, match=named):
        load_pascal_voc(root, 2007, 'trainval')


def test_malformed_xml_and_non_numeric_coordinates_name_the_file(tmp_path):
    root = write_voc(tmp_path / 'a', {'a': ('<annotation><object>', (200, 100))})
    with pytest.raises(UserError, match=r'a\.xml is not valid XML'):
        load_pascal_voc(root, 2007, 'trainval')
    root = write_voc(tmp_path / 'b', {'a': (annotation_xml([object_xml('dog', ('1', 'ten', '5', '5'))]), (200, 100))})
    with pytest.raises(UserError, match=r"a\.xml: <ymin> is 'ten'"):
        load_pascal_voc(root, 2007, 'trainval')


def test_missing_root_year_or_set_names_the_path(tmp_path):
    root = write_voc(tmp_path, {'a': (annotation_xml([]), (200, 100))})
    with pytest.raises(UserError, match='nowhere'):
        load_pascal_voc(str(tmp_path / 'nowhere'), 2007, 'trainval')
    with pytest.raises(UserError, match='VOC2012 does not exist'):
        load_pascal_voc(root, 2012, 'trainval')
    with pytest.raises(UserError, match=r'Main/test\.txt does not exist \(sets found: trainval\)'):
        load_pascal_voc(root, 2007, 'test')


def test_default_classes_are_the_twenty_voc_classes(tmp_path):
    imdb = load_one(tmp_path, [])
    assert imdb.classes == VOC_CLASSES
    assert len(imdb.classes) == 20 and imdb.classes[0] == 'aeroplane' and imdb.classes[-1] == 'tvmonitor'


def test_classes_txt_is_picked_up_and_an_explicit_list_wins(tmp_path):
    xml = annotation_xml([object_xml('square', (21, 11, 41, 31)), object_xml('circle', (1, 1, 21, 11))])
    root = write_voc(tmp_path, {'a': (xml, (200, 100))}, classes=['circle', 'square'])
    imdb = load_pascal_voc(root, 2007, 'trainval')
    assert imdb.classes == ('circle', 'square')
    np.testing.assert_array_equal(imdb.labels[0][:, 0], [1, 0])
    explicit = load_pascal_voc(root, 2007, 'trainval', classes=['square'])
    assert explicit.classes == ('square',)
    np.testing.assert_array_equal(explicit.labels[0][:, 0], [0])
    assert explicit.stats["objects of unknown class 'circle' skipped"] == 1
