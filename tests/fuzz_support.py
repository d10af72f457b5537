"""The fuzz campaign's strategies and its property (tests/test_fuzz.py runs them; `make fuzz`
runs them longer with FUZZ_EXAMPLES set).

The property, for any input: the CLI exits 0, or exits 2 with exactly one line on stderr;
never a traceback (an uncaught exception), within TIME_BOUND_S and with the process's peak
memory under MEMORY_BOUND_BYTES. Inputs are scenario documents with fields replaced by hostile
values, raw YAML texts (deep nesting, alias bombs, binary), `--set` expressions and whole CLI
argument lists.
"""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from typer.testing import CliRunner

from dcsim.app.cli import app

ROOT = Path(__file__).resolve().parents[1]
TIME_BOUND_S = 60.0
MEMORY_BOUND_BYTES = 4 << 30
# The campaign runs the CLI with these limits (dcsim/limits.py; the documented way to size the
# checks to a machine): sizes a run could not finish within them are refused up front, as they
# would be on a machine this size. Without them a valid million-node fabric is allowed here
# (this machine's default bar is an hour and 80% of its memory) and takes minutes.
LIMITS_ENV = {"DCSIM_MAX_TIME": "20 s", "DCSIM_MAX_MEMORY": "2 GiB"}
# How many examples each campaign runs: a few hundred each in `make test` (about a minute all
# together), FUZZ_EXAMPLES of them under `make fuzz`.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) or None

_runner = CliRunner()


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def invoke(args: list[str]) -> Any:
    """Run the CLI in-process on `args` and check the property; returns the click result."""
    t0 = time.monotonic()
    res = _runner.invoke(app, args, catch_exceptions=True, env=LIMITS_ENV)
    elapsed = time.monotonic() - t0
    shown = " ".join(a if len(a) < 80 else a[:77] + "..." for a in args)
    exc = res.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        raise AssertionError(f"dcsim {shown}: uncaught {type(exc).__name__}\n{tb}")
    assert res.exit_code in (0, 2), f"dcsim {shown}: exit {res.exit_code}\n{res.output[-2000:]}"
    err_lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    if res.exit_code == 2:
        assert len(err_lines) == 1, f"dcsim {shown}: {len(err_lines)} stderr lines:\n{res.stderr[:3000]}"
        assert len(err_lines[0]) <= 320, f"dcsim {shown}: a {len(err_lines[0])}-char error line"
    assert "Traceback" not in res.output, f"dcsim {shown}: traceback in output"
    assert elapsed < TIME_BOUND_S, f"dcsim {shown}: took {elapsed:.0f} s"
    assert peak_rss_bytes() < MEMORY_BOUND_BYTES, f"dcsim {shown}: peak RSS {peak_rss_bytes() >> 20} MiB"
    return res


# --- hostile values -----------------------------------------------------------------------

SPECIAL_NUMBERS = [0, -1, 1, 2, 3, 7, 8, 16, 64, 1000, 10**6, 10**9, 10**12, 10**18, 2**63,
                   -(2**63), 0.5, -0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan]
SPECIAL_STRINGS = ["", " ", "1 GiB", "400 Gb/s", "30 min", "0 GB/s", "-5 s", "1e400", "nan",
                   ".inf", "-.inf", "1e3 parsecs", "auto", "off", "flow", "ecmp", "spec",
                   "cpu-2core", "cpu-2core.check", "dgx-h100", "gpt3-175b", "llama3-8b",
                   "\x00", "é", "x" * 5000, "[unclosed", "{a: 1", "*alias", "&a [1]", "!!python/object:os.system"]

scalars = st.one_of(
    st.sampled_from(SPECIAL_NUMBERS),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(SPECIAL_STRINGS),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)

# Every field a scenario may set (and a few it may not).
FIELDS = [
    "name", "cluster", "cluster.preset", "cluster.nodes", "cluster.fabric",
    "cluster.fabric.topology", "cluster.fabric.oversubscription", "cluster.fabric.tiers",
    "cluster.fabric.link", "cluster.fabric.radix", "cluster.fabric.rails",
    "cluster.fabric.flows_per_connection", "cluster.storage", "cluster.storage.0.write_bw",
    "cluster.storage.0.read_bw", "workload", "workload.model", "workload.model.layers",
    "workload.model.hidden", "workload.model.heads", "workload.model.kv_heads",
    "workload.model.ffn_hidden", "workload.model.vocab", "workload.model.activation",
    "workload.model.experts", "workload.model.top_k", "workload.seq_len", "workload.precision",
    "workload.parallelism", "workload.parallelism.tp", "workload.parallelism.pp",
    "workload.parallelism.dp", "workload.parallelism.vp", "workload.parallelism.cp",
    "workload.parallelism.ep", "workload.parallelism.zero", "workload.parallelism.recompute",
    "workload.parallelism.sequence_parallel", "workload.parallelism.ddp_bucket_params",
    "workload.parallelism.fsdp", "workload.batch", "workload.batch.global", "workload.batch.micro",
    "workload.train", "workload.train.tokens", "workload.train.checkpoint_every",
    "workload.flash_attention", "workload.moe_imbalance", "run", "run.network", "run.routing",
    "run.fold", "run.calibration", "run.seed", "run.perturb", "run.perturb.slow_gpus",
    "run.perturb.degraded_links", "jobs", "colour", "workload.colour",
]

# A scenario that simulates in a fraction of a second (16 GPUs, 8 layers).
BASE: dict[str, Any] = {
    "name": "fuzz",
    "cluster": {"preset": "dgx-h100", "nodes": 2,
                "storage": [{"tier": "parallel-fs", "read_bw": "400 GB/s", "write_bw": "200 GB/s"}]},
    "workload": {
        "model": {"layers": 8, "hidden": 1024, "heads": 16, "ffn_hidden": 4096, "vocab": 32000},
        "seq_len": 1024, "precision": "bf16",
        "parallelism": {"tp": 4, "pp": 2, "dp": 2},
        "batch": {"global": 16, "micro": 1},
        "train": {"tokens": "1e9", "checkpoint_every": "30 min"},
    },
    "run": {"network": "analytical", "fold": "auto"},
}


def set_field(doc: dict[str, Any], path: str, value: Any) -> None:
    """Put `value` at the dotted `path` of `doc`, making mappings (or list entries) on the way."""
    node: Any = doc
    keys = path.split(".")
    for k in keys[:-1]:
        if isinstance(node, list):
            i = int(k) if k.isdigit() else 0
            if i >= len(node):
                node.append({})
                i = len(node) - 1
            if not isinstance(node[i], (dict, list)):
                node[i] = {}
            node = node[i]
            continue
        if not isinstance(node.get(k), (dict, list)):
            node[k] = {}
        node = node[k]
    last = keys[-1]
    if isinstance(node, list):
        node.append(value)
    else:
        node[last] = value


def dump(doc: Any) -> str:
    """YAML text of a document (hostile floats included: YAML has .nan and .inf)."""
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def value_yaml(value: Any) -> str:
    """A value as the YAML text a --set expression would carry."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


# Raw YAML texts: the shapes that break parsers or eat memory.
def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else "{a: " * depth + "1" + "}" * depth


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\ncluster: {{preset: dgx-h100, nodes: *a{levels - 1}}}\n"


yaml_texts = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.builds(_nested, st.integers(1, 3_000), st.sampled_from(["list", "map"])),
    st.builds(_alias_bomb, st.integers(1, 9), st.integers(1, 9)),
    st.builds(lambda v, f: dump(_with(f, v)), values, st.sampled_from(FIELDS)),
    st.builds(lambda k: dump(BASE) + f"\n{k}: 1\n{k}: 2\n", st.sampled_from(["name", "run"])),
    st.sampled_from(["", "---", "- 1\n- 2", "cluster: [", "\t- tab", "%YAML 9.9\n---\na: 1",
                     "!!binary AAAA", "? [a, b]\n: c", "a: !!python/tuple [1, 2]"]),
)


def _with(path: str, value: Any) -> dict[str, Any]:
    import copy
    doc = copy.deepcopy(BASE)
    set_field(doc, path, value)
    return doc
