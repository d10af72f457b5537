"""Turn a published dataset into a calibration profile (new, or added to one of that device)."""

from __future__ import annotations

import shutil
from pathlib import Path

from calibrate.fit import fit_profile
from calibrate.published import eleutherai, vidur
from calibrate.published.common import DEVICES, PublishedImportError
from dcsim.profile import (
    CollectiveSample,
    KernelSample,
    Metadata,
    Profile,
    ProfileError,
    PublishedSource,
    load_profile,
    save_profile,
)

__all__ = ["import_published", "PublishedImportError"]

# Licence file names in each dataset folder (kept beside the profile, as the data's licence asks).
_LICENCE = {"vidur": "LICENSE", "eleutherai-cookbook": "LICENSE"}
# Vidur rows kept: powers of two and multiples of this many tokens (vidur.keep_tokens).
DEFAULT_TOKEN_STEP = 512


def _read(source: str, root: Path, device: str, every: int,
          ) -> tuple[list[KernelSample], list[CollectiveSample], PublishedSource]:
    if source == "vidur":
        kernels, kfiles = vidur.compute_samples(root, device, every)
        colls, cfiles = vidur.collective_samples(root, device)
        return kernels, colls, vidur.source(root, device, kfiles + cfiles, len(kernels) + len(colls))
    if source == "eleutherai":
        if device != "a100":
            raise PublishedImportError(f"--device: the EleutherAI sweeps measured an A100 only, not {device!r}")
        kernels, files = eleutherai.samples(root)
        return kernels, [], eleutherai.source(files, len(kernels))
    raise PublishedImportError(f"SOURCE: {source!r} is not one of vidur, eleutherai")


def _start(out: Path, device: str) -> Profile:
    """The profile to add to: the published profile already at `out` (same device), or a new one."""
    gpu, name = DEVICES[device]
    if out.exists():
        try:
            prof = load_profile(out)
        except ProfileError as exc:
            raise PublishedImportError(f"--out: {exc}") from None
        md = prof.metadata
        if md.measurement != "published" or md.device_name != name:
            raise PublishedImportError(
                f"--out: {out} holds {md.measurement} measurements of {md.device_name!r}; import "
                f"published {name} data into a new file")
        return prof
    md = Metadata(device_kind="cuda", device_name=name, device_count=8, host=f"DGX ({gpu}), published measurement",
                  torch_version="see metadata.sources", backend="nccl", cache_flush_bytes=0,
                  measurement="published", complete=True,
                  notes=[f"published measurements of {gpu} imported by `dcsim calibrate import`; "
                         "no kernel here was timed by dcsim"])
    return Profile(metadata=md)


def import_published(source: str, root: Path, device: str, out: Path,
                     every: int = DEFAULT_TOKEN_STEP) -> Profile:
    """Read `source` under `root` for `device`, add it to the profile at `out` (replacing the
    samples an earlier import of the same dataset left there), fit, and write it with the
    dataset's licence beside it."""
    device = device.strip().lower()
    if device not in DEVICES:
        raise PublishedImportError(f"--device: {device!r} is not one of {', '.join(DEVICES)}")
    if not root.is_dir():
        raise PublishedImportError(f"PATH: {root} is not a folder")
    kernels, colls, src = _read(source, root, device, every)
    prof = _start(out, device)
    prefix = f"published/{'eleutherai' if source == 'eleutherai' else source}/"
    for group in prof.kernels.values():
        group[:] = [s for s in group if not s.key.startswith(prefix)]
    for cgroup in prof.collectives.values():
        cgroup[:] = [c for c in cgroup if not c.key.startswith(prefix)]
    for k in kernels:
        prof.add_kernel(k)
    for c in colls:
        prof.add_collective(c)
    prof.metadata.sources = [s for s in prof.metadata.sources if s.dataset != src.dataset] + [src]
    prof.kernels = {k: v for k, v in prof.kernels.items() if v}
    prof.collectives = {k: v for k, v in prof.collectives.items() if v}
    compute, collective = fit_profile(prof)
    prof.set_fits(compute, collective)
    lic = root / _LICENCE[src.dataset]
    if lic.exists() and src.licence_file:
        dest = out.parent / src.licence_file
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lic, dest)
    save_profile(prof, out, indent=None)
    return prof
