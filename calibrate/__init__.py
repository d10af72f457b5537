"""Measurement on real hardware: kernel and collective benchmarks, fitting, profile files.

`python -m calibrate run --quick --device cpu` (or `dcsim calibrate run ...`) measures this
machine and writes a profile (dcsim.profile) under calibrate/profiles/.
"""
