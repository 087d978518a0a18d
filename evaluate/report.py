"""Tables people read at the end of a run: AP per class, one column per evaluation."""


def format_ap_table(columns, precision=3):
    """A plain-text table of per-class AP with mAP as the last row.

    Parameters
    ----------
    columns : dict
        ``{column title: {class name: AP, ..., 'mAP': value}}``, in column order; every column has the same
        class names (those of the first column give the row order).
    precision : int
        Decimals printed.

    Returns
    -------
    list of str
        The header line, one line per class, then the mAP line.

    Example
    -------
    >>> format_ap_table({'epoch 2': {'cat': 0.5, 'mAP': 0.5}})
    ['class  epoch 2', 'cat      0.500', 'mAP      0.500']
    """
    titles = list(columns)
    names = [name for name in columns[titles[0]] if name != 'mAP'] + ['mAP']
    first = max(len(name) for name in names + ['class'])
    widths = [max(len(title), precision + 2) for title in titles]
    lines = ['  '.join(['class'.ljust(first)] + [title.rjust(width) for title, width in zip(titles, widths)])]
    for name in names:
        cells = ['%.*f' % (precision, columns[title][name]) for title in titles]
        lines.append('  '.join([name.ljust(first)] + [cell.rjust(width) for cell, width in zip(cells, widths)]))
    return lines
