"""The engine reports its progress in ops, ending at the total."""

from __future__ import annotations

from dcsim.app.scenario import load_scenario
from dcsim.app.simulate import simulate
from tests.conftest import small_scenario


def test_progress_counts_ops_up_to_the_total() -> None:
    seen: list[tuple[int, int]] = []
    r = simulate(load_scenario(small_scenario()), progress=lambda d, t: seen.append((d, t)))
    assert seen, "no progress reported"
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(t for _, t in seen)) == 1
    assert seen[-1] == (r.events, r.events)  # the last call says all ops ran
