"""dataset/lst.py: the one label splitter, the six-column form and the [0, 1] coordinate check, by hand."""
import numpy as np
import pytest

from config.errors import UserError
from dataset.lst import (
    flatten_label,
    format_lst_line,
    inside_unit_square,
    parse_lst_line,
    split_label,
    to_six_columns,
    unflatten_label,
)


def test_split_label_returns_the_layout_and_rows_with_padding():
    flat = [3, 5, 99, 1, 0.1, 0.2, 0.3, 0.4, -1, -1, -1, -1, -1]  # one header extra, one 5-wide object, one pad
    header_width, object_width, objects = split_label(flat, 'x')
    assert (header_width, object_width) == (3, 5)
    assert objects.shape == (2, 5) and objects.dtype == np.float32
    assert objects[0].tolist() == pytest.approx([1, 0.1, 0.2, 0.3, 0.4]) and objects[1].tolist() == [-1] * 5


@pytest.mark.parametrize('flat', [
    [3.0],                          # a classification label: no layout at all
    [1, 6, 0, 0.1, 0.1, 0.2, 0.2, 0],  # header width below 2
    [2, 4, 0, 0.1, 0.1, 0.2],       # object width below 5
    [2.5, 6, 0, 0.1, 0.1, 0.2, 0.2, 0],
    [2, 6, 0, 0.1, 0.1, 0.2],       # a cut object row
    [4, 6, 0],                      # shorter than its header
])
def test_split_label_rejects_what_is_not_a_detection_label(flat):
    with pytest.raises(UserError, match=r'^a\.lst line 3 is not a detection label .*--pack-label'):
        split_label(flat, 'a.lst line 3')


def test_unflatten_label_drops_padding_and_fills_difficult():
    objects = unflatten_label([2, 5, 4, 0.1, 0.2, 0.3, 0.4, -1, -1, -1, -1, -1, 7, 0.5, 0.5, 0.9, 0.8])
    np.testing.assert_allclose(objects, [[4, 0.1, 0.2, 0.3, 0.4, 0], [7, 0.5, 0.5, 0.9, 0.8, 0]], atol=1e-6)
    assert unflatten_label([2, 6]).shape == (0, 6)
    rows = [[1, 0.1, 0.2, 0.5, 0.6, 1], [3, 0, 0, 1, 1, 0]]
    np.testing.assert_allclose(unflatten_label(flatten_label(rows)), rows, atol=1e-6)


def test_to_six_columns_cuts_wider_rows():
    wide = np.array([[1, 0.1, 0.2, 0.3, 0.4, 1, 55, 66]], np.float32)
    assert to_six_columns(wide).tolist() == [[1, np.float32(0.1), np.float32(0.2), np.float32(0.3),
                                              np.float32(0.4), 1]]


def test_inside_unit_square_allows_the_tolerance_only():
    boxes = np.array([[0, 0, 1, 1], [-0.0009, 0, 1.0009, 1], [-0.002, 0, 0.5, 0.5], [0, 0, 1.002, 1],
                      [np.nan, 0, 0.5, 0.5], [12, 30, 200, 180]])
    assert inside_unit_square(boxes).tolist() == [True, True, False, False, False, False]


def test_parse_lst_line_round_trips_format_lst_line():
    rows = [[2, 0.125, 0.25, 0.5, 0.75, 0], [0, 0, 0, 1, 1, 1]]
    index, objects, path = parse_lst_line(format_lst_line(12, rows, 'JPEGImages/a b.jpg') + '\n')
    assert (index, path) == (12, 'JPEGImages/a b.jpg')
    np.testing.assert_allclose(objects, rows, atol=1e-6)
    with pytest.raises(UserError, match=r'a\.lst: cannot parse line'):
        parse_lst_line('12\t2\tsix\ta.jpg', source='a.lst')
