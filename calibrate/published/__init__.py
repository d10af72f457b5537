"""Published measurements of GPU kernels and collectives, imported as calibration profiles.

`dcsim calibrate import SOURCE PATH --device GPU --out PROFILE` reads a public dataset
(../shared/data/kernels: `vidur`, `eleutherai`) into the profile format `dcsim calibrate run`
writes: raw samples, the same fits with their held-out errors, and metadata that says whose
measurement it is (dataset, repository, commit, GPU, licence). Importing into an existing
profile of the same device adds the samples and fits everything again, so one profile can hold
several datasets (the A100 profile holds Vidur's and EleutherAI's).
"""

from calibrate.published.build import PublishedImportError, import_published

__all__ = ["import_published", "PublishedImportError", "SOURCES"]

SOURCES = ("vidur", "eleutherai")
