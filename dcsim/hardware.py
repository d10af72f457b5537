"""Hardware specs (GPUs, links/NICs) loaded from the catalog in dcsim/data/*.yaml.

Values are datasheet numbers with their sources in the YAML comments; all are converted to
SI here (FLOP/s, bytes, bytes/s, seconds, watts) so the rest of dcsim never sees units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Mapping

import yaml

from dcsim import units, vocabulary
from dcsim.errors import InputError

PRECISIONS = vocabulary.DATASHEET_PRECISIONS


class UnknownHardware(InputError):
    """A name that is not in the catalog; the message lists what is."""


@dataclass(frozen=True)
class GPUSpec:
    """One accelerator: dense peak rates per precision, memory, NVLink, power."""

    name: str
    peak_flops: Mapping[str, float]
    hbm_bytes: float
    hbm_bw_bytes_per_s: float
    nvlink: str
    nvlink_bw_bytes_per_s: float
    nvls: bool
    tdp_w: float
    # GPUs run collectives on their own copy/SM resources beside compute; CPU ranks with one
    # core each do not (gloo's communication thread takes the same core).
    comm_overlaps_compute: bool = True

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s for a precision; a clear error if the GPU lacks it."""
        try:
            return self.peak_flops[precision]
        except KeyError:
            allowed = ", ".join(self.peak_flops)
            raise UnknownHardware(
                f"{self.name} has no {precision} tensor-core rate; it supports {allowed}"
            ) from None


@dataclass(frozen=True)
class LinkSpec:
    """A link or NIC type: per-direction bandwidth and per-hop latency."""

    name: str
    kind: str
    bw_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class Catalog:
    """All known GPUs and links, by name."""

    gpus: Mapping[str, GPUSpec] = field(default_factory=dict)
    links: Mapping[str, LinkSpec] = field(default_factory=dict)

    def gpu(self, name: str) -> GPUSpec:
        if name not in self.gpus:
            raise UnknownHardware(f"unknown GPU {name!r}; known: {', '.join(sorted(self.gpus))}")
        return self.gpus[name]

    def link(self, name: str) -> LinkSpec:
        if name not in self.links:
            raise UnknownHardware(
                f"unknown link {name!r}; known: {', '.join(sorted(self.links))}"
            )
        return self.links[name]


def _read_yaml(name: str) -> dict:
    text = resources.files("dcsim").joinpath("data", name).read_text()
    return yaml.safe_load(text)


def _gpu(name: str, d: dict) -> GPUSpec:
    return GPUSpec(
        name=name,
        peak_flops={p: units.parse_flops(v) for p, v in d["peak_flops"].items()},
        hbm_bytes=units.parse_bytes(d["hbm"]),
        hbm_bw_bytes_per_s=units.parse_bandwidth(d["hbm_bw"]),
        nvlink=d["nvlink"],
        nvlink_bw_bytes_per_s=units.parse_bandwidth(d["nvlink_bw"]),
        nvls=bool(d["nvls"]),
        tdp_w=units.parse_power(d["tdp"]),
        comm_overlaps_compute=bool(d.get("comm_overlaps_compute", True)),
    )


def _link(name: str, d: dict) -> LinkSpec:
    return LinkSpec(
        name=name,
        kind=d["kind"],
        bw_bytes_per_s=units.parse_bandwidth(d["bw"]),
        latency_s=units.parse_duration(d["latency"]),
    )


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The bundled catalog (read once; immutable)."""
    gpus = {n: _gpu(n, d) for n, d in _read_yaml("gpus.yaml").items()}
    links = {n: _link(n, d) for n, d in _read_yaml("links.yaml").items()}
    return Catalog(gpus=gpus, links=links)


def gpu(name: str) -> GPUSpec:
    """A GPU spec by catalog name (e.g. 'h100-sxm')."""
    return catalog().gpu(name)


def link(name: str) -> LinkSpec:
    """A link/NIC spec by catalog name (e.g. 'ib-ndr-400')."""
    return catalog().link(name)
