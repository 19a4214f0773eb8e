"""`etr-dist study <study config> [overrides] [--out DIR] [--report-only] [--jobs N] [--address URL]`: every
arm x seed as an ordinary training run, one after another here or up to N at a time as Ray jobs on a cluster;
a rerun skips finished runs and resumes an interrupted one; then the report."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from etr_dist.config import ConfigError
from etr_dist.driver.checkpoint import LATEST
from etr_dist.study.config import PlannedRun, StudyConfig, compose_arms, load_study, plan_runs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="etr-dist study",
        description="train every arm x seed of a study, then write report.md with plots",
    )
    p.add_argument("study", help="a study config, e.g. configs/study/cpu_arith.yaml")
    p.add_argument("overrides", nargs="*", help="Hydra-style overrides shared by every run")
    p.add_argument("--out", default=None, help="the study folder (default: runs/study/<name>)")
    p.add_argument("--report-only", action="store_true", help="write the report from the runs there are")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="submit up to N runs at once as Ray jobs (needs a dashboard address)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="the Ray dashboard to submit the runs to as jobs, e.g. http://head:8265 "
        "(default with --jobs > 1: RAY_ADDRESS when it is an http(s) address)",
    )
    return p


def job_address(jobs: int, address: str | None) -> str | None:
    """The dashboard to submit the runs to as Ray jobs, or None: one after another on this machine."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    env = os.environ.get("RAY_ADDRESS", "")
    if address is None and jobs > 1:
        if not env.startswith(("http://", "https://")):
            found = f" (RAY_ADDRESS={env!r} is not one)" if env else " (RAY_ADDRESS is not set)"
            raise ConfigError(
                f"--jobs {jobs} submits the runs as Ray jobs and needs the cluster's dashboard address: pass "
                f"--address http://<head>:8265 or set RAY_ADDRESS to an http(s) address{found}"
            )
        address = env
    if address is not None and not address.startswith(("http://", "https://")):
        raise ConfigError(
            f"--address must be the Ray dashboard's http(s) URL, e.g. http://<head>:8265, got {address!r}"
        )
    return address


def record_study(folder: Path, study: StudyConfig, command: list[str]) -> None:
    """study.yaml holds the resolved study; a rerun with another study config in the same folder is refused."""
    text = OmegaConf.to_yaml(OmegaConf.create({"study": study.__dict__}))
    saved = folder / "study.yaml"
    if saved.is_file() and saved.read_text() != text:
        raise ConfigError(
            f"{folder} holds another study (its study.yaml differs: other arms, seeds or overrides); "
            "rerun the same command to resume it, or choose another --out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(text)
    with open(folder / "commands.txt", "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {shlex.join(command)}\n")


def clear_unresumable(run: PlannedRun) -> None:
    """An interrupted run without a checkpoint starts over (nothing to resume, and a new run refuses a folder
    that holds metrics)."""
    if run.run_dir.exists() and not (run.run_dir / "checkpoints" / LATEST).is_file():
        shutil.rmtree(run.run_dir)


def train(run: PlannedRun) -> None:
    """One training run in a subprocess, its output appended to the run's log."""
    run.log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, *run.train_args]
    with open(run.log, "a", encoding="utf-8") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise RuntimeError(
            f"run {run.key} failed (exit {code}); its log: {run.log}. Rerun the study to resume it."
        )
    run.done.write_text(shlex.join(command) + "\n")


def run_study(
    study: StudyConfig,
    folder: Path,
    command: list[str],
    report_only: bool = False,
    jobs: int = 1,
    address: str | None = None,
) -> Path:
    """Train what is missing (here one after another, or as Ray jobs at `address`, up to `jobs` at once), then
    write the report; returns report.md's path."""
    composed = compose_arms(study)
    record_study(folder, study, command)
    runs = plan_runs(study, folder)
    pending = []
    for index, run in enumerate([] if report_only else runs, 1):
        if run.done.is_file():
            print(f"[{index}/{len(runs)}] {run.key}: finished, skipped", flush=True)
        else:
            clear_unresumable(run)
            pending.append(run)
    if pending and address is not None:
        from etr_dist.study.jobs import JobQueue, RayJobs  # ray: only for a study on a cluster

        JobQueue(RayJobs(address), study.name, jobs, Path.cwd()).run(pending)
        pending = []
    for run in pending:
        index = runs.index(run) + 1
        print(f"[{index}/{len(runs)}] {run.key}: training in {run.run_dir}", flush=True)
        start = time.time()
        train(run)
        print(f"[{index}/{len(runs)}] {run.key}: done in {time.time() - start:.0f} s", flush=True)
    from etr_dist.study.report import write_report  # matplotlib and torch: only when reporting

    return write_report(study, folder, runs, composed, command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    command = ["etr-dist", "study", *argv]
    try:
        address = job_address(args.jobs, args.address)
        study = load_study(Path(args.study), args.overrides)
        folder = Path(args.out) if args.out else Path("runs") / "study" / study.name
        report = run_study(study, folder.resolve(), command, args.report_only, args.jobs, address)
    except (ConfigError, FileNotFoundError) as err:
        print(f"etr-dist study: config error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"etr-dist study: {err}", file=sys.stderr)
        return 1
    print(f"report: {report}", flush=True)
    return 0
