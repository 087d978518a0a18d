"""Test-session set-up: the OpenMP thread count is fixed before any test imports mxnet, as every entry
script does (config.runtime.configure_threads)."""
from config.runtime import configure_threads

configure_threads()
