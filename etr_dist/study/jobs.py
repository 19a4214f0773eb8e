"""A study's runs as Ray jobs (`etr-dist study --jobs N --address URL`): up to N at a time, each job's driver
`python -m etr_dist.train <the run's overrides>` on the cluster; its log and .done marker go where the sequential
path writes them, so the study folder must be on storage every node sees."""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from etr_dist.study.config import PlannedRun

FORWARDED_ENV = (  # set here, they reach every job (its driver and actors): a Ray job gets the cluster's env
    "PYTHONPATH",
    "ETR_DIST_CACHE",
    "ETR_DIST_CONFIG_DIR",
    "HF_HOME",
    "HF_HUB_OFFLINE",
)


TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
LOG_EVERY_S = 30.0  # a running job's whole log is fetched again at most this often (it grows with the run)


class JobClient(Protocol):
    def submit(self, entrypoint: str, submission_id: str, metadata: dict[str, str]) -> str: ...
    def status(self, job_id: str) -> str: ...
    def logs(self, job_id: str) -> str: ...
    def stop(self, job_id: str) -> None: ...
    def active(self, metadata: Mapping[str, str]) -> list[str]: ...


class RayJobs:
    """Ray's job API (what `ray job submit` uses): submit, status, logs and stop through JobSubmissionClient."""

    def __init__(self, address: str) -> None:
        from ray.job_submission import (
            JobSubmissionClient,
        )  # ray only for a parallel study: the CLI stays fast

        self.client = JobSubmissionClient(address)

    def submit(self, entrypoint: str, submission_id: str, metadata: dict[str, str]) -> str:
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        return self.client.submit_job(
            entrypoint=entrypoint,
            submission_id=submission_id,
            metadata=metadata,
            runtime_env={"env_vars": env} if env else None,
        )

    def status(self, job_id: str) -> str:
        return str(self.client.get_job_status(job_id).value)

    def logs(self, job_id: str) -> str:
        return self.client.get_job_logs(job_id)

    def stop(self, job_id: str) -> None:
        self.client.stop_job(job_id)

    def active(self, metadata: Mapping[str, str]) -> list[str]:
        """Ids of the jobs not finished yet whose metadata holds `metadata`."""
        return [
            str(job.submission_id)
            for job in self.client.list_jobs()
            if not job.status.is_terminal() and metadata.items() <= (job.metadata or {}).items()
        ]


@dataclass
class Job:
    run: PlannedRun
    job_id: str
    entrypoint: str
    log_start: int  # the log's size before this attempt's output
    started: float
    logged: float = 0.0  # when its log was last copied


class JobQueue:
    """Submits runs in plan order, at most `parallel` at a time, and polls them; a failed or stopped job stops
    the submissions, the running jobs finish (they are valid runs), then the error names the run and its log.
    Leaving early (Ctrl-C, an error) stops the jobs still running: a rerun resumes them."""

    def __init__(self, client: JobClient, study_name: str, parallel: int, cwd: Path, poll_s: float = 2.0):
        self.client, self.parallel, self.poll_s = client, parallel, poll_s
        self.prefix = re.sub(r"[^A-Za-z0-9_-]", "_", study_name)
        self.cwd = cwd  # relative paths in the overrides resolve where the sequential runs would resolve them

    def run(self, runs: Sequence[PlannedRun]) -> None:
        folder = str(runs[0].run_dir.parents[1]) if runs else ""
        still = self.client.active({"etr_dist_study": folder})
        if still:
            raise RuntimeError(
                f"Ray jobs of this study still run on the cluster ({', '.join(still)}), maybe left by a study "
                "that was killed: wait for them or stop them (ray job stop <id>) before rerunning"
            )
        queue, running, failed = list(runs), [], None
        try:
            while queue or running:
                while queue and len(running) < self.parallel:
                    running.append(self._submit(queue.pop(0), folder))
                time.sleep(self.poll_s)
                for job in list(running):
                    status = self.client.status(job.job_id)
                    if status in TERMINAL or time.time() - job.logged >= LOG_EVERY_S:
                        self._write_log(job)
                    if status == "SUCCEEDED":
                        self._check_shared(job)
                        job.run.done.write_text(f"{job.entrypoint}\n# Ray job {job.job_id}\n")
                        print(f"{job.run.key}: done in {time.time() - job.started:.0f} s", flush=True)
                    elif status in ("FAILED", "STOPPED"):
                        failed = failed or (job, status)
                        print(f"{job.run.key}: {status}; its log: {job.run.log}", flush=True)
                    else:
                        continue
                    running.remove(job)
                if failed and queue:
                    print(f"not submitting {len(queue)} more runs; waiting for {len(running)}", flush=True)
                    queue.clear()
        except BaseException:
            for job in running:
                self.client.stop(job.job_id)
                print(f"{job.run.key}: stopped Ray job {job.job_id}", flush=True)
            raise
        if failed:
            job, status = failed
            raise RuntimeError(
                f"run {job.run.key} failed (Ray job {job.job_id}: {status}); its log: {job.run.log}. "
                "Rerun the study to resume it."
            )

    def _submit(self, run: PlannedRun, folder: str) -> Job:
        entrypoint = f"cd {shlex.quote(str(self.cwd))} && {shlex.join(['python', *run.train_args])}"
        submission_id = f"{self.prefix}-{run.key}-{time.strftime('%Y%m%d-%H%M%S')}"
        job_id = self.client.submit(entrypoint, submission_id, {"etr_dist_study": folder, "run": run.key})
        run.log.parent.mkdir(parents=True, exist_ok=True)
        with open(run.log, "a", encoding="utf-8") as out:
            out.write(f"$ {entrypoint}\n# Ray job {job_id}\n")
        print(f"{run.key}: submitted as Ray job {job_id}, training in {run.run_dir}", flush=True)
        return Job(run, job_id, entrypoint, run.log.stat().st_size, time.time())

    @staticmethod
    def _check_shared(job: Job) -> None:
        if not job.run.run_dir.is_dir():
            raise RuntimeError(
                f"run {job.run.key}: its Ray job {job.job_id} succeeded but its folder {job.run.run_dir} is not "
                "here: the study folder must be on storage every node of the cluster sees at the same path"
            )

    def _write_log(self, job: Job) -> None:
        """The job's whole output so far, after this attempt's header (earlier attempts' output stays)."""
        text, job.logged = self.client.logs(job.job_id), time.time()
        with open(job.run.log, "r+b") as out:
            out.truncate(job.log_start)
            out.seek(job.log_start)
            out.write(text.encode())
