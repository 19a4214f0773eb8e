"""`etr-dist study --jobs N --address URL`: the argument errors, and the job queue against a scripted client."""

from pathlib import Path

import pytest

from etr_dist.cli import main
from etr_dist.study.config import PlannedRun
from etr_dist.study.jobs import JobQueue


@pytest.mark.parametrize(
    ("args", "ray_address", "message"),
    [
        (
            ["--jobs", "2"],
            None,
            "--jobs 2 submits the runs as Ray jobs and needs the cluster's dashboard address",
        ),
        (["--jobs", "2"], "127.0.0.1:6379", "(RAY_ADDRESS='127.0.0.1:6379' is not one)"),
        (["--jobs", "0"], None, "--jobs must be >= 1, got 0"),
        (["--address", "127.0.0.1:8265"], None, "--address must be the Ray dashboard's http(s) URL"),
    ],
)
def test_parallel_arguments_fail_naming_the_problem(args, ray_address, message, monkeypatch, capsys):
    if ray_address is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", ray_address)
    assert main(["study", "no_such_study.yaml", *args]) == 2  # checked before the study file is read
    assert message in capsys.readouterr().err


class ScriptedJobs:
    """Each job reports the statuses scripted for its run, one per poll, then keeps the last."""

    def __init__(self, script: dict[str, list[str]], active: list[str] | None = None):
        self.script, self.still_active = script, active or []
        self.submitted: list[tuple[str, str, dict]] = []
        self.stopped: list[str] = []
        self.live_at_submit: list[int] = []  # jobs not yet reported finished when another was submitted
        self.live: set[str] = set()
        self.polls: dict[str, int] = {}

    def submit(self, entrypoint, submission_id, metadata):
        job_id = f"job-{metadata['run']}"
        (Path(metadata["etr_dist_study"]) / "runs" / metadata["run"]).mkdir(parents=True)  # as the run would
        self.live_at_submit.append(len(self.live))
        self.submitted.append((entrypoint, submission_id, metadata))
        self.live.add(job_id)
        self.polls[job_id] = 0
        return job_id

    def status(self, job_id):
        statuses = self.script[job_id.removeprefix("job-").removesuffix("_s0")]
        status = statuses[min(self.polls[job_id], len(statuses) - 1)]
        self.polls[job_id] += 1
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            self.live.discard(job_id)
        return status

    def logs(self, job_id):
        return f"output of {job_id} after {self.polls[job_id]} polls\n"

    def stop(self, job_id):
        self.stopped.append(job_id)

    def active(self, metadata):
        return self.still_active


def planned(folder: Path, *keys: str) -> list[PlannedRun]:
    return [PlannedRun(k, 0, ["trainer.total_steps=1"], folder / "runs" / f"{k}_s0", True) for k in keys]


def test_jobs_run_at_most_n_at_once_and_write_logs_and_markers(tmp_path):
    client = ScriptedJobs(
        {"a": ["RUNNING", "SUCCEEDED"], "b": ["RUNNING"] * 3 + ["SUCCEEDED"], "c": ["SUCCEEDED"]}
    )
    runs = planned(tmp_path / "study", "a", "b", "c")
    JobQueue(client, "tiny study", parallel=2, cwd=Path("/work dir"), poll_s=0).run(runs)
    assert client.live_at_submit == [0, 1, 1]  # c waits for a's slot
    entrypoint, submission_id, metadata = client.submitted[0]
    assert entrypoint == "cd '/work dir' && python -m etr_dist.train trainer.total_steps=1"
    assert submission_id.startswith("tiny_study-a_s0-") and metadata == {
        "etr_dist_study": str(tmp_path / "study"),
        "run": "a_s0",
    }
    command = "cd '/work dir' && python -m etr_dist.train trainer.total_steps=1"
    for run, polls in (("a_s0", 2), ("b_s0", 4), ("c_s0", 1)):
        assert (
            tmp_path / "study" / "runs" / f"{run}.done"
        ).read_text() == f"{command}\n# Ray job job-{run}\n"
        assert (tmp_path / "study" / "logs" / f"{run}.log").read_text() == (
            f"$ {command}\n# Ray job job-{run}\noutput of job-{run} after {polls} polls\n"
        )
    assert client.stopped == []


def test_a_failed_job_stops_submissions_lets_the_running_finish_and_names_its_log(tmp_path):
    client = ScriptedJobs({"a": ["RUNNING", "RUNNING", "SUCCEEDED"], "b": ["FAILED"], "c": ["SUCCEEDED"]})
    runs = planned(tmp_path / "study", "a", "b", "c")
    log = tmp_path / "study" / "logs" / "b_s0.log"
    log.parent.mkdir(parents=True)
    log.write_text("an earlier attempt\n")
    with pytest.raises(
        RuntimeError, match=r"run b_s0 failed \(Ray job job-b_s0: FAILED\); its log: .*b_s0\.log"
    ):
        JobQueue(client, "tiny", parallel=2, cwd=tmp_path, poll_s=0).run(runs)
    assert [m["run"] for _, _, m in client.submitted] == ["a_s0", "b_s0"]  # c never submitted
    assert (tmp_path / "study" / "runs" / "a_s0.done").is_file()  # a finished after b failed
    assert not (tmp_path / "study" / "runs" / "b_s0.done").exists()
    assert log.read_text().startswith("an earlier attempt\n$ cd ")  # attempts append
    assert client.stopped == []


def test_jobs_of_the_study_still_on_the_cluster_are_refused(tmp_path):
    client = ScriptedJobs({"a": ["SUCCEEDED"]}, active=["tiny-a_s0-20260101-000000"])
    with pytest.raises(RuntimeError, match="still run on the cluster \\(tiny-a_s0-20260101-000000\\)"):
        JobQueue(client, "tiny", parallel=2, cwd=tmp_path, poll_s=0).run(planned(tmp_path, "a"))
    assert client.submitted == []


def test_leaving_early_stops_the_running_jobs(tmp_path):
    client = ScriptedJobs({"a": ["RUNNING"], "b": ["RUNNING"]})
    client.logs = lambda job_id: (_ for _ in ()).throw(KeyboardInterrupt)  # Ctrl-C during a poll
    with pytest.raises(KeyboardInterrupt):
        JobQueue(client, "tiny", parallel=2, cwd=tmp_path, poll_s=0).run(planned(tmp_path / "s", "a", "b"))
    assert client.stopped == ["job-a_s0", "job-b_s0"]


def test_a_run_folder_the_submitting_machine_cannot_see_is_an_error(tmp_path):
    client = ScriptedJobs({"a": ["SUCCEEDED"]})
    submit = client.submit

    def elsewhere(*args):  # the job wrote its folder on another node's disk
        job_id = submit(*args)
        (tmp_path / "s" / "runs" / "a_s0").rmdir()
        return job_id

    client.submit = elsewhere
    with pytest.raises(RuntimeError, match="must be on storage every node of the cluster sees"):
        JobQueue(client, "tiny", parallel=1, cwd=tmp_path, poll_s=0).run(planned(tmp_path / "s", "a"))
    assert not (tmp_path / "s" / "runs" / "a_s0.done").exists()
