"""`python -m calibrate run ...`: the calibrate CLI without the dcsim front door."""

from calibrate.cli import main

main()
