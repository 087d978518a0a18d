"""Shared pieces every layer above ``symbol`` uses: atomic files, checkpoint I/O, the run directory, devices.

Layers import downward only (tests/test_layers.py checks it)::

    config  <  symbol  <  core  <  dataset  <  evaluate  <  train  <  tools / entry scripts / bench

``config`` holds defaults, the configuration schema, ``UserError`` and process settings (no MXNet);
``symbol`` builds graphs; ``core`` reads and writes what a run leaves on disk.
"""
