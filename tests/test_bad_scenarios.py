"""Check before you build, reject nonsense (issue 14 items 1-2): every case is exit 2, one line
on stderr naming the field with its full path, no traceback, and nothing built first."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dcsim.app.cli import app
from dcsim.app.scenario import ScenarioError, load_scenario
from dcsim.yamlio import MAX_DEPTH, MAX_EXPANDED_NODES, YamlInputError, load_yaml
from tests.conftest import small_scenario
from topologies import TopologyError, build_cluster

runner = CliRunner()


def _run(tmp_path: Path, text: str, *extra: str):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    return runner.invoke(app, ["simulate", str(f), "--json", *extra])


def _one_line_exit_2(res, *words: str) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert "Traceback" not in res.output
    assert len(err.splitlines()) == 1, err
    assert len(err) <= 320, len(err)
    for w in words:
        assert w in err, err
    return err


SMALL = yaml.safe_dump(small_scenario())

# (case, --set assignment, words the one line must hold)
SET_CASES = [
    ("nodes huge", "cluster.nodes=1000000000000", ["cluster.nodes", "GPUs would need about",
                                                   "DCSIM_MAX_MEMORY", "run.limits"]),
    ("nodes bool", "cluster.nodes=true", ["cluster.nodes", "integer >= 1", "True"]),
    ("nodes zero", "cluster.nodes=0", ["cluster.nodes", ">= 1"]),
    ("nodes float", "cluster.nodes=2.5", ["cluster.nodes", "integer"]),
    ("tokens inf", "workload.train.tokens=.inf", ["workload.train.tokens", "finite"]),
    ("tokens nan", "workload.train.tokens=.nan", ["workload.train.tokens", "finite"]),
    ("tokens negative", "workload.train.tokens=-8e9", ["workload.train.tokens", "> 0"]),
    ("checkpoint zero", "workload.train.checkpoint_every=0", ["checkpoint_every", "> 0"]),
    ("checkpoint negative", "workload.train.checkpoint_every=-30 min", ["checkpoint_every", "> 0"]),
    ("write_bw zero", "cluster.storage=[{tier: nfs, write_bw: 0}]",
     ["cluster.storage.0.write_bw", "> 0"]),
    ("write_bw negative", "cluster.storage=[{tier: nfs, write_bw: -5 GB/s}]",
     ["cluster.storage.0.write_bw", "> 0"]),
    ("slow gpu out of range", "run.perturb.slow_gpus={99: 2}", ["run.perturb.slow_gpus", "99",
                                                                "0..15"]),
    ("slow gpu negative", "run.perturb.slow_gpus={-1: 2}", ["run.perturb.slow_gpus", ">= 0"]),
    ("slowdown below 1", "run.perturb.slow_gpus={1: 0.5}", ["slow_gpus", ">= 1"]),
    ("degraded link out of range", "run.perturb.degraded_links=[{gpu: 16, factor: 0.5}]",
     ["run.perturb.degraded_links.0.gpu", "0..15"]),
    ("layers huge", "workload.model.layers=1000000", ["workload", "ops", "limit"]),
    ("batch huge", "workload.batch.global=4000000000", ["workload", "ops", "limit"]),
    ("tp bool", "workload.parallelism.tp=true", ["workload.parallelism.tp", "integer"]),
    ("zero bool", "workload.parallelism.zero=true", ["workload.parallelism.zero"]),
    ("hidden zero", "workload.model.hidden=0", ["workload.model.hidden", ">= 1"]),
    ("vocab negative", "workload.model.vocab=-1", ["workload.model.vocab", ">= 1"]),
    ("seq_len huge string", "workload.seq_len=" + "9" * 5000, ["workload.seq_len"]),
    ("moe imbalance nan", "workload.moe_imbalance=.nan", ["workload.moe_imbalance", "finite"]),
    ("unclosed --set", "workload.seq_len=[unclosed", ["--set workload.seq_len", "not valid YAML"]),
    ("fabric unknown key", "cluster.fabric.colour=red", ["cluster.fabric.colour", "unknown key",
                                                        "flows_per_connection"]),
    ("fabric odd k", "cluster.fabric.k=7", ["cluster.fabric.k", "even"]),
    ("flows zero", "cluster.fabric.flows_per_connection=0",
     ["cluster.fabric.flows_per_connection", ">= 1"]),
    ("oversubscription inf", "cluster.fabric.oversubscription=.inf",
     ["cluster.fabric.oversubscription", ">= 1"]),
    ("limits memory", "run.limits.memory=1 kB", ["cluster.nodes", "memory limit 1000 B"]),
    ("no workload", "workload=null", ["workload / jobs", "give either"]),
    ("factor bool", "run.perturb.degraded_links=[{gpu: 1, factor: true}]",
     ["run.perturb.degraded_links.0.factor", "number"]),
    ("factor zero", "run.perturb.degraded_links=[{gpu: 1, factor: 0}]",
     ["run.perturb.degraded_links.0.factor", "greater than 0"]),
    ("imbalance bool", "workload.moe_imbalance=true", ["workload.moe_imbalance", "number"]),
    ("seed bool", "run.seed=true", ["run.seed", "integer"]),
    ("tokens bool", "workload.train.tokens=true", ["workload.train.tokens", "boolean"]),
    ("model name huge", "workload.model=" + "x" * 5000, ["workload.model", "unknown model"]),
    ("preset name huge", "cluster.preset=" + "x" * 5000, ["cluster.preset", "unknown preset"]),
    ("calibration huge", "run.calibration=" + "x" * 5000, ["run.calibration"]),
    ("link name huge", "cluster.fabric.link=" + "x" * 5000, ["cluster.fabric.link", "allowed"]),
]


@pytest.mark.parametrize("assignment,words", [c[1:] for c in SET_CASES],
                         ids=[c[0] for c in SET_CASES])
def test_bad_value_is_one_line_exit_2(tmp_path, assignment, words):
    _one_line_exit_2(_run(tmp_path, SMALL, "--set", assignment), *words)


def test_a_huge_cluster_is_refused_before_it_is_built(tmp_path):
    t0 = time.perf_counter()
    _one_line_exit_2(_run(tmp_path, SMALL, "--set", "cluster.nodes=1000000000000"), "16.83 PiB")
    assert time.perf_counter() - t0 < 30  # a bound on the failure mode, not a timing claim


def test_the_limit_can_be_raised(tmp_path, monkeypatch):
    """run.limits and DCSIM_MAX_MEMORY raise (or lower) the memory limit the message names."""
    err = _one_line_exit_2(_run(tmp_path, SMALL, "--set", "workload.model.layers=1000000",
                                "--set", "run.limits.time=100 days"), "memory limit")
    assert "time limit" not in err
    monkeypatch.setenv("DCSIM_MAX_MEMORY", "1 kB")
    _one_line_exit_2(_run(tmp_path, SMALL), "memory limit 1000 B", "DCSIM_MAX_MEMORY")
    monkeypatch.setenv("DCSIM_MAX_MEMORY", "lots")
    _one_line_exit_2(_run(tmp_path, SMALL), "DCSIM_MAX_MEMORY")


@pytest.mark.parametrize("text,words", [
    ("name: a\nname: b\n" + SMALL.replace("name: small\n", ""), ["line 2", "duplicate key 'name'"]),
    ("name: " + "[" * 100_000 + "]" * 100_000 + "\n", ["nested deeper than"]),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"a{i}: &a{i} [{', '.join(['*a' + (str(i - 1) if i > 1 else '')] * 10)}]\n"
               for i in range(1, 12)) + "name: bomb\n", ["aliases", "100,000"]),
    ("cluster: [unclosed\n", ["not valid YAML", "line 2"]),
], ids=["duplicate key", "deep nesting", "anchor bomb", "unclosed"])
def test_yaml_traps_are_one_line(tmp_path, text, words):
    _one_line_exit_2(_run(tmp_path, text), *words)


def test_a_huge_wrong_value_is_abbreviated():
    """An aliased value of 10^4 entries is quoted in a few dozen characters, not walked whole."""
    anchors = "x0: &x0 [" + ", ".join(["1"] * 10) + "]\n" + "".join(
        f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]\n" for i in range(1, 4))
    sc = small_scenario()
    sc["workload"]["seq_len"] = load_yaml(anchors)["x3"]
    with pytest.raises(ScenarioError) as e:
        load_scenario(sc)
    assert len(str(e.value)) < 200 and "workload.seq_len" in str(e.value)


def test_directory_and_non_utf8_are_named(tmp_path):
    res = runner.invoke(app, ["simulate", str(tmp_path), "--json"])
    _one_line_exit_2(res, str(tmp_path), "directory")
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    _one_line_exit_2(runner.invoke(app, ["simulate", str(f), "--json"]), "latin1.yaml", "UTF-8")


def test_flows_per_connection_works_in_a_scenario():
    """The preset key is a scenario key too (one schema), and it reaches the built fabric."""
    from dcsim.app.simulate import build_cluster as build_scenario_cluster
    sc = load_scenario(small_scenario(), ["cluster.fabric.flows_per_connection=4"])
    assert build_scenario_cluster(sc).description["fabric"]["flows_per_connection"] == 4


def test_every_preset_field_is_a_scenario_field():
    """A preset file's keys are all accepted in a scenario's cluster (inline, no preset)."""
    from topologies import load_preset
    for name in ("roce-24k-clos", "dgx-h100-superpod", "gb200-nvl72"):
        data = load_preset(name)
        sc = load_scenario(small_scenario(cluster={**data, "nodes": 2}),
                           ["workload.parallelism.tp=1", "workload.parallelism.pp=1",
                            "workload.parallelism.dp=1", "cluster.gpus_per_node=1",
                            "cluster.nics_per_node=1"] if name == "gb200-nvl72" else [])
        assert sc.cluster.gpu == data["gpu"]


def test_storage_tier_and_fabric_attachment_are_one_schema():
    """A storage tier with servers is placed on the fabric; its write_bw prices checkpoints."""
    from dcsim.app.simulate import build_cluster as build_scenario_cluster
    sc = load_scenario(small_scenario(), [
        "cluster.storage=[{tier: nfs, write_bw: 5 GB/s, servers: 2, link: ib-ndr-400}]"])
    c = build_scenario_cluster(sc)
    assert sum(1 for _, d in c.graph.nodes(data=True) if d["kind"] == "storage") == 2
    assert sc.cluster.storage[0].write_bw == 5e9
    with pytest.raises(TopologyError, match="storage.0.servers"):
        build_cluster({"preset": "dgx-h100", "storage": {"servers": 0}})


# --- hypothesis: the loader never raises anything but YamlInputError, in bounded time ---------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=20))
_docs = st.recursive(_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_docs)
def test_loader_reads_what_safe_dump_writes(doc):
    """Any document PyYAML writes (no aliases, shallow) reads back equal."""
    text = yaml.safe_dump(doc)
    got = load_yaml(text)
    if isinstance(doc, float) and math.isnan(doc):
        assert math.isnan(got)
    else:
        assert yaml.safe_load(text) == got or got != got  # NaN inside containers


_yaml_pieces = st.sampled_from(["a", "b", ":", " ", "\n", "- ", "[", "]", "{", "}", ",", "&x ",
                                "*x", "&y ", "*y", "'", '"', "#", "!!str ", "1", "-1", ".inf",
                                ".nan", "true", "  ", "? ", "|", ">"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_yaml_pieces, max_size=40).map("".join))
def test_loader_on_arbitrary_text_returns_or_says_one_line(text):
    try:
        load_yaml(text, "t")
    except YamlInputError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 300


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=MAX_DEPTH + 1, max_value=200_000), st.sampled_from("[{"))
def test_deep_nesting_is_refused_not_recursed(depth, bracket):
    close = "]" if bracket == "[" else "}"
    inner = "1" if bracket == "[" else "a: 1"
    text = "k: " + (bracket if bracket == "[" else "{a: ") * depth + inner + close * depth
    with pytest.raises(YamlInputError, match="nested deeper"):
        load_yaml(text)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=2, max_value=12), st.integers(min_value=2, max_value=12))
def test_alias_expansion_is_bounded(width, levels):
    lines = ["l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    text = "\n".join(lines)
    sizes = [1 + width]                        # l0: the list and its scalars
    for _ in range(1, levels):
        sizes.append(1 + width * sizes[-1])    # each level: the list and `width` copies of the last
    expanded = 1 + sum(1 + n for n in sizes)   # the top mapping, each key and each value
    if expanded <= MAX_EXPANDED_NODES:
        assert len(load_yaml(text)) == levels
    else:
        with pytest.raises(YamlInputError, match="aliases"):
            load_yaml(text)


def test_every_bundled_preset_passes_the_shared_schema():
    """The presets are validated by the same models as scenarios (no key only one side knows)."""
    from topologies import list_presets, resolve_spec
    for name in list_presets():
        assert resolve_spec(name).gpus >= 1
