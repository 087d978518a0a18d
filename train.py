"""train.py: not implemented yet (tracked in issue 4); exits with a one-line message."""
import sys


def main():
    print('train.py is not implemented yet (issue 4); the data pipeline is: '
          'tools/synthetic_voc.py -> tools/prepare_dataset.py -> tools/preview_batches.py', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
