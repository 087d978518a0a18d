"""evaluate.py: not implemented yet (tracked in issue 5); exits with a one-line message."""
import sys


def main():
    print('evaluate.py is not implemented yet (issue 5); the data pipeline is: '
          'tools/synthetic_voc.py -> tools/prepare_dataset.py -> tools/preview_batches.py', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
