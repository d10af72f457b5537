"""The fuzz campaign (issue 14 item 5): hostile scenario documents, YAML texts, `--set`
expressions and CLI argument lists; the CLI exits 0, or 2 with one line on stderr, never a
traceback, within a time and memory bound (tests/fuzz_support.py: `invoke`).

`make test` runs a few hundred examples of each campaign (about a minute); `make fuzz` runs
FUZZ_EXAMPLES of each.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_support import (BASE, EXAMPLES, FIELDS, ROOT, dump, invoke, set_field,
                                value_yaml, values, yaml_texts)

_SETTINGS = dict(deadline=None, derandomize=EXAMPLES is None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    (d / "adir").mkdir()
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00name: x\n")
    (d / "ok.yaml").write_text(dump(BASE))
    return d


@pytest.fixture(scope="module", autouse=True)
def scratch_cwd(workdir: Path) -> Iterator[None]:
    """Run every command from a scratch folder: argument lists with relative output paths
    (`--dir 16`, `--out ring`) must write there, not into the checkout."""
    scratch = workdir / "cwd"
    scratch.mkdir()
    old = os.getcwd()
    os.chdir(scratch)
    try:
        yield
    finally:
        os.chdir(old)


@settings(max_examples=EXAMPLES or 600, **_SETTINGS)
@given(edits=st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=3))
def test_scenario_documents(workdir: Path, edits: list[tuple[str, Any]]) -> None:
    doc = copy.deepcopy(BASE)
    for path, value in edits:
        set_field(doc, path, value)
    f = workdir / "doc.yaml"
    f.write_text(dump(doc), encoding="utf-8")
    invoke(["simulate", str(f), "--json", "--no-timing"])


@settings(max_examples=EXAMPLES or 400, **_SETTINGS)
@given(text=yaml_texts)
def test_yaml_texts(workdir: Path, text: str) -> None:
    f = workdir / "text.yaml"
    f.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    invoke(["simulate", str(f), "--json", "--no-timing"])


set_paths = st.one_of(
    st.sampled_from(FIELDS),
    st.text(alphabet="ab.[]0=", max_size=10),
    st.sampled_from(["jobs.0.placement", "jobs[0].placement", "workload..x", ".", "=", "a=b=c",
                     "workload.parallelism.tp.x", "cluster.storage.5.write_bw"]),
)
set_values = st.one_of(values.map(value_yaml), st.sampled_from([
    "[unclosed", "{a: 1", "*nope", "&a [*a]", "!!python/object:os.system", "\x00", "1e400",
    "- a\n- b", "a: b: c"]))


@settings(max_examples=EXAMPLES or 450, **_SETTINGS)
@given(sets=st.lists(st.tuples(set_paths, set_values, st.booleans()), min_size=1, max_size=3))
def test_set_expressions(workdir: Path, sets: list[tuple[str, str, bool]]) -> None:
    args = ["simulate", str(workdir / "ok.yaml"), "--json", "--no-timing"]
    for path, value, with_eq in sets:
        args += ["--set", f"{path}={value}" if with_eq else path]
    invoke(args)


def _paths(workdir: Path) -> st.SearchStrategy[str]:
    return st.sampled_from([str(workdir / "adir"), str(workdir / "binary.yaml"),
                            str(workdir / "missing.yaml"), str(workdir / "ok.yaml"),
                            str(workdir / "out" / "x.png"), str(workdir / "adir" / "t.json"),
                            "/proc/nope/x", "/dev/null", "", "-", str(ROOT / "README.md")])


# Flag values of every kind, sizes included: beyond what this machine can simulate they are
# refused with an estimate before anything is built (dcsim/limits.py).
_ints = st.sampled_from(["0", "-1", "1", "2", "8", "16", "3.5", "abc", "", "1e3", "nan",
                         "1000000", "100000000", "99999999999999999999", "-99999999999999999999"])
_words = st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                          "broadcast", "send_recv", "allreduce", "ring", "tree", "nvls",
                          "direct", "hierarchical", "auto", "flow", "analytical", "packet",
                          "dgx-h100", "dgx-a100", "cpu-host", "nope", "spec", "cpu-2core",
                          "cpu-2core.check", "1 GiB", "8", "-1 B", "lots", "", "ecmp", "spray"])


def _command(workdir: Path) -> st.SearchStrategy[list[str]]:
    paths, val = _paths(workdir), st.one_of(_ints, _words, _paths(workdir))
    flag = st.sampled_from(["--nodes", "--gpus", "--size", "--network", "--algorithm",
                            "--routing", "--preset", "--out", "--dp", "--compute-scale",
                            "--calibration", "--set", "--trace", "--json", "--steps",
                            "--device", "--profile", "--plot", "--dir", "--bogus", "--help"])
    head = st.one_of(
        st.tuples(st.just("simulate"), paths).map(list),
        st.just(["topo", "show"]).map(lambda h: h + ["dgx-h100"]),
        st.tuples(st.just("topo"), st.sampled_from(["show", "draw"]), _words).map(list),
        st.tuples(st.just("collective"), _words).map(list),
        st.tuples(st.just("validate"), st.sampled_from(["--network", "--dir"]),
                  st.one_of(_words.filter(lambda w: w not in ("flow", "analytical")),
                            paths)).map(list),
        st.tuples(st.just("replay"), st.sampled_from(
            [str(ROOT / "tests/fixtures/kineto_tinygpt_ddp2.json"), str(workdir / "binary.yaml"),
             str(workdir / "adir"), str(workdir / "ok.yaml")])).map(list),
        st.tuples(st.just("calibrate"), st.just("refit"), paths).map(list),
        st.tuples(st.just("fleet"), st.just("run"), st.one_of(paths, st.sampled_from(
            [str(ROOT / "examples/fleet/openb-default.yaml")]))).map(list),
        st.tuples(st.just("fleet"), st.just("pack"), st.just("--trace"), paths).map(list),
        st.sampled_from([["calibrate", "check", "--steps", "0"], ["calibrate", "check", "--device", "tpu"],
                         ["calibrate"], ["topo"], ["nope"], [], ["--help"]]),
    )
    pairs = st.lists(st.tuples(flag, val), max_size=3).map(
        lambda ps: [x for p in ps for x in p])
    return st.tuples(head, pairs).map(lambda hp: hp[0] + hp[1])


def _affordable(args: list[str]) -> bool:
    """Leave out argument lists that would be valid and slow: a real `calibrate check` or
    `calibrate run` (they train or measure for minutes), a full validation."""
    if args[:2] in (["calibrate", "check"], ["calibrate", "run"]):
        if not any(a in ("--help", "--bogus") for a in args) and not any(
                a in ("--steps", "--device") for a in args[2:3]):
            return False
    if args[:2] == ["calibrate", "refit"] and args[2:3] == [str(ROOT / "README.md")]:
        return True
    if args[:1] == ["validate"] and ("flow" in args or "analytical" in args or "--help" in args
                                     or args[1:3] == ["--dir", str(ROOT / "README.md")]):
        return False  # a valid validation runs a minute; test_bad_input covers its flags
    return True


@settings(max_examples=EXAMPLES or 450, **_SETTINGS)
@given(data=st.data())
def test_cli_argument_lists(workdir: Path, data: st.DataObject) -> None:
    args = data.draw(_command(workdir).filter(_affordable))
    invoke(args)
