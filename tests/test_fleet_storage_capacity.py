"""Checkpoint tier capacity: finished jobs' checkpoints make room, oldest first; a checkpoint
that still cannot fit is refused and reported."""

from __future__ import annotations

from dcsim.fleet import FleetJob, StorageTier, simulate_fleet
from dcsim.fleet.config import FleetSpec
from dcsim.fleet.retention import CheckpointStore
from tests.test_fleet_core import layout

GB = 1e9


def test_store_deletes_finished_checkpoints_oldest_first():
    st = CheckpointStore(capacity_bytes=10 * GB)
    for j, t in ((0, 1.0), (1, 2.0)):
        assert st.reserve(j, 4 * GB)
        st.commit(j, t)
        st.finish(j)
    assert st.reserve(2, 4 * GB)          # 8 + 4 > 10: job 0's (the older) goes
    assert set(st.stored) == {1} and st.deleted == 1
    assert not st.reserve(3, 7 * GB)      # 4 + 4 + 7 > 10 even with job 1's gone: refused
    assert st.refused == {3: 1} and 3 not in st.reserved
    assert st.deleted == 2                # job 1's was deleted trying


def test_a_running_job_keeps_its_own_checkpoint():
    st = CheckpointStore(capacity_bytes=10 * GB)
    assert st.reserve(0, 4 * GB)
    st.commit(0, 1.0)
    assert st.reserve(0, 4 * GB)          # the new one next to the old one: 8 GB
    st.commit(0, 2.0)
    assert st.used_bytes == 4 * GB        # the old one replaced
    assert not st.reserve(1, 7 * GB)      # job 0 is still running: nothing to delete
    assert st.deleted == 0


def _fleet(capacity_gb: float | None):
    spec = FleetSpec.model_validate({"horizon": "2 days",
                                     "checkpoint": {"interval": "1 h"}})
    jobs = [FleetJob(id=i, name=f"j{i}", submit_s=i * 7200.0, gpus=8, work_s=4 * 3600.0,
                     checkpoint_bytes=40 * GB) for i in range(3)]
    tier = StorageTier("pfs", 100 * GB, 100 * GB,
                       None if capacity_gb is None else capacity_gb * GB)
    return simulate_fleet(spec, layout(nodes=1), jobs, [tier])


def test_fleet_reports_what_did_not_fit():
    free = _fleet(None)
    assert free.summary["checkpoint_storage"]["checkpoints_not_fit"] == 0
    # 60 GB: one 40 GB checkpoint, never a second next to it; jobs run one after another
    tight = _fleet(60)
    cs = tight.summary["checkpoint_storage"]
    assert cs["peak_used_bytes"] <= 60 * GB
    assert cs["checkpoints_not_fit"] > 0
    assert cs["jobs_with_checkpoints_not_fit"]
    assert cs["finished_checkpoints_deleted"] >= 1
    assert tight.jobs["checkpoints_not_fit"].sum() == cs["checkpoints_not_fit"]
    assert (tight.jobs["checkpoints"] < free.jobs["checkpoints"]).any()
