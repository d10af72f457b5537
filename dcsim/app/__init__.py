"""The front door: it composes the core with topologies/, workloads/ and calibrate/ (scenario,
simulate, replay, validate, calibration check, topology commands, the CLI)."""
