"""Job sources: the generator against five real clusters (AcmeTrace summaries), the Alibaba
trace, the generic job log, Philly run times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcsim.fleet.config import GeneratorSpec, JobSourceSpec
from dcsim.fleet.sources import SourceError, alibaba, generate, joblog, load_jobs

SHARED = Path("/work/shared/data/traces")
ACME = SHARED / "summaries/acme_cluster_summary.csv"
OPENB = SHARED / "alibaba-gpu-v2023/openb_pod_list_default.csv"
PHILLY = SHARED / "summaries/philly_runtimes.csv"
need = pytest.mark.skipif(not ACME.exists(), reason="../shared/data not present")


@need
@pytest.mark.parametrize("cluster", ["Seren", "Kalos", "Philly", "Helios", "PAI"])
def test_generator_matches_acme_cluster_summary(cluster):
    """Configured with a cluster's median / mean GPUs and run time (max GPUs as the top size),
    200,000 generated jobs reproduce its medians exactly and its means within sampling noise
    (lognormal run-time means are heavy-tailed: 20%)."""
    row = pd.read_csv(ACME).set_index("id").loc[cluster]
    g = GeneratorSpec.model_validate({
        "jobs": 200_000,
        "gpus": {"median": row.med_gpu_num, "mean": row.avg_gpu_num,
                 "max": row.max_gpu if not np.isnan(row.max_gpu) else 8},
        "duration": {"median": row.med_run_time_gpu, "mean": row.avg_run_time_gpu}})
    jobs = generate(g, horizon_s=86400 * 30, seed=0)
    gpus = np.array([j.gpu_amount for j in jobs])
    run = np.array([j.work_s for j in jobs])
    assert np.median(gpus) == pytest.approx(row.med_gpu_num)
    assert gpus.mean() == pytest.approx(row.avg_gpu_num, rel=0.05)
    assert np.median(run) == pytest.approx(row.med_run_time_gpu, rel=0.02)
    assert run.mean() == pytest.approx(row.avg_run_time_gpu, rel=0.20)


def test_generator_arrivals_are_poisson_at_the_rate():
    g = GeneratorSpec.model_validate({"jobs": 20000, "arrival_rate_per_h": 10})
    jobs = generate(g, 1.0, seed=1)
    gaps = np.diff([j.submit_s for j in jobs])
    assert gaps.mean() == pytest.approx(360, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)  # exponential: CV 1


@pytest.mark.skipif(not OPENB.exists(), reason="../shared/data not present")
def test_alibaba_pods():
    jobs = alibaba(pd.read_csv(OPENB))
    assert len(jobs) > 8000
    shared = [j for j in jobs if j.gpus == 1 and j.gpu_milli < 1000]
    assert len(shared) > 3000 and all(0 < j.gpu_milli < 1000 for j in shared)
    assert all(j.work_s > 0 for j in jobs)
    with pytest.raises(SourceError, match="alibaba trace: missing column 'creation_time'"):
        alibaba(pd.read_csv(SHARED / "alibaba-gpu-v2023/openb_pod_list_multigpu50.csv"))


def test_joblog_columns_and_errors(tmp_path):
    df = pd.DataFrame({"submit_s": [0, 60], "gpus": [8, 16], "duration_s": [3600, 7200],
                       "priority": [0, 2], "user": ["a", "b"]})
    jobs = joblog(df)
    assert [j.gpus for j in jobs] == [8, 16] and jobs[1].priority == 2
    with pytest.raises(SourceError, match="missing column 'gpus'"):
        joblog(df.drop(columns="gpus"))
    with pytest.raises(SourceError, match="'submit_s' must be >= 0"):
        joblog(df.assign(submit_s=[-1, 0]))
    with pytest.raises(SourceError, match="'duration_s' must be > 0"):
        joblog(df.assign(duration_s=[0, 5]))
    with pytest.raises(SourceError, match="'gpus' must be numeric"):
        joblog(df.assign(gpus=["x", "y"]))
    p = tmp_path / "log.parquet"
    df.to_parquet(p)
    spec = JobSourceSpec.model_validate({"source": "joblog", "path": str(p)})
    assert len(load_jobs(spec, 86400, 0)) == 2
    empty = tmp_path / "empty.csv"
    empty.write_text("submit_s,gpus,duration_s\n")
    with pytest.raises(SourceError, match="no rows"):
        load_jobs(JobSourceSpec.model_validate({"source": "joblog", "path": str(empty)}), 1, 0)


@pytest.mark.skipif(not PHILLY.exists(), reason="../shared/data not present")
def test_philly_run_times_are_drawn_from_the_published_list():
    spec = JobSourceSpec.model_validate({"source": "philly", "path": str(PHILLY),
                                         "generator": {"jobs": 5000}})
    jobs = load_jobs(spec, 86400 * 30, 0)
    published = pd.read_csv(PHILLY)["runtime"]
    published = published[published > 0]
    run = np.array([j.work_s for j in jobs])
    assert np.median(run) == pytest.approx(published.median(), rel=0.1)
    assert set(np.unique(run)) <= set(published.unique())
