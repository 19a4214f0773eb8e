"""docs/journeys/*.md run as written: every command of a page, in order, in one bash shell per page.

Blocks that start with `# not run in CI:` are skipped (they say why). The tiny overrides that
docs/journeys/README.md shows are appended to each training, eval and submit command, and nothing else changes:
the command a user reads is the command that runs. Monitor, resume and export continue the laptop page's run.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from etr_dist.config import compose_config

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "docs" / "journeys"
SKIP_MARK = "# not run in CI:"
TINY = (
    "learner.num_ranks=1 rollout.group_size=4 rollout.max_new_tokens=8 trainer.prompts_per_step=4 "
    "reward.num_workers=1"
)
GPU_ON_CPU = "rollout=hf model.dtype=float32 learner.num_gpus_per_rank=0 rollout.num_gpus_per_worker=0 trainer.total_steps=1"
TAKES_OVERRIDES = ("python -m etr_dist.train", "etr-dist eval", "launch/submit.sh")
# page -> the pages whose outputs it continues
CONTINUES = {"monitor_resume": ("laptop",), "export": ("laptop", "monitor_resume")}


def bash_blocks(page: Path) -> list[list[str]]:
    """Each ```bash block of a page as its commands (continuation lines joined, comment lines dropped)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    return [[c for c in block.replace("\\\n", " ").splitlines() if c.strip()] for block in blocks]


def page_commands(page: Path) -> list[str]:
    """The commands CI runs: every bash block's, except those of blocks marked `# not run in CI:`."""
    return [
        line
        for block in bash_blocks(page)
        if not block[0].startswith(SKIP_MARK)
        for line in block
        if not line.lstrip().startswith("#")
    ]


def with_tiny_overrides(command: str) -> str:
    """The command with README's tiny overrides after its own (before a `||`, `|` or trailing comment)."""
    if not any(entry in command for entry in TAKES_OVERRIDES):
        return command
    extra = TINY + (" " + GPU_ON_CPU if "+experiment=gpu_math" in command else "")
    command = re.sub(r"\s+#\s[^'\"]*$", "", command)
    head, sep, tail = command.partition(" || ")
    return f"{head.rstrip()} {extra}{sep}{tail}"


def write_math_data(folder: Path) -> None:
    """MATH-style rows (problem, solution with a boxed answer, answer), as the cluster page expects."""
    folder.mkdir(parents=True)
    for name, count, offset in (("train.jsonl", 40, 0), ("test.jsonl", 8, 100)):
        rows = [
            {
                "problem": f"What is ${a}+{a % 7}$?",
                "solution": f"Adding, ${a}+{a % 7}={a + a % 7}$, so the sum is $\\boxed{{{a + a % 7}}}$.",
                "answer": str(a + a % 7),
            }
            for a in range(offset, offset + count)
        ]
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


class Journeys:
    """One workspace (a checkout-like folder) where the pages run, each once, in the order they continue."""

    def __init__(self, root: Path, tiny_model: str) -> None:
        self.root, self.outputs = root, {}
        (root / "launch").symlink_to(REPO / "launch")
        write_math_data(root / "data")
        ray_temp = tempfile.mkdtemp(prefix="etr-jr-", dir="/tmp")  # Ray's socket paths must stay < 108 bytes
        base = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
        self.env = {
            **base,  # Ray's auth mode unset: each path runs with its default (token authentication)
            "PATH": f"{Path(sys.executable).parent}:{base['PATH']}",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            "ETR_DIST_CACHE": str(root / "cache"),
            "RAY_TMPDIR": ray_temp,  # in-process clusters: never join another Ray cluster on this machine
            "RAY_TEMP_DIR": ray_temp,  # launch/local_cluster.sh's settings: a head of its own, on its own ports
            "RAY_HEAD_PORT": "6393",
            "RAY_DASHBOARD_PORT": "8293",
            "RAY_AGENT_PORT": "52393",
        }
        # what the cluster page's first block (not run) sets on a real cluster
        self.page_env = {
            "cluster": {
                "MODEL": tiny_model,
                "DATA": str(root / "data"),
                "RUNS": str(root / "cluster_runs"),
                "RAY_ADDRESS": "http://127.0.0.1:8293",
            }
        }

    def run(self, name: str) -> str:
        """The page's output (its earlier pages run first); fails naming the command that failed."""
        if name not in self.outputs:
            for earlier in CONTINUES.get(name, ()):
                self.run(earlier)
            lines = ["set -eo pipefail"]
            for command in map(with_tiny_overrides, page_commands(PAGES / f"{name}.md")):
                lines += [f"echo {shlex.quote('journey$ ' + command)}", command]
            result = subprocess.run(
                ["bash", "-c", "\n".join(lines)],
                cwd=self.root,
                env={**self.env, **self.page_env.get(name, {})},
                capture_output=True,
                text=True,
                timeout=900,
            )
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{name}.md failed:\n{output[-6000:]}"
            self.outputs[name] = output
        return self.outputs[name]

    def stop_cluster(self) -> None:
        subprocess.run(["bash", "launch/local_cluster.sh", "stop"], cwd=self.root, env=self.env, check=False)
        shutil.rmtree(self.env["RAY_TEMP_DIR"], ignore_errors=True)


@pytest.fixture(scope="module")
def journeys(tmp_path_factory, tiny_model_path):
    runner = Journeys(tmp_path_factory.mktemp("journeys"), tiny_model_path)
    yield runner
    runner.stop_cluster()  # the cluster page's head, even when the page failed


def test_every_page_is_listed_runs_commands_and_says_why_it_skips_any():
    readme = (PAGES / "README.md").read_text()
    assert TINY in readme and GPU_ON_CPU in readme  # the overrides CI appends are the ones the README shows
    pages = sorted(p.stem for p in PAGES.glob("*.md") if p.name != "README.md")
    assert pages == ["cluster", "compare", "export", "laptop", "monitor_resume"]
    for page in pages:
        assert f"]({page}.md)" in readme, page
        assert page_commands(PAGES / f"{page}.md"), f"{page}.md has no command CI runs"
        for block in bash_blocks(PAGES / f"{page}.md"):
            if block[0].startswith(SKIP_MARK):
                assert len(block[0]) > len(SKIP_MARK) + 10, f"{page}.md skips a block without saying why"


def test_the_tiny_overrides_go_after_the_command_s_own():
    assert (
        with_tiny_overrides("python -m etr_dist.train a=1 || echo no")
        == f"python -m etr_dist.train a=1 {TINY} || echo no"
    )
    assert with_tiny_overrides("etr-dist export runs/x out") == "etr-dist export runs/x out"
    assert with_tiny_overrides("launch/submit.sh -- +experiment=gpu_math   # note").endswith(
        f"{TINY} {GPU_ON_CPU}"
    )


def cluster_submit_overrides() -> list[str]:
    """The Hydra overrides of the cluster page's submit command, with the page's own example paths."""
    (command,) = [c for c in page_commands(PAGES / "cluster.md") if c.startswith("launch/submit.sh")]
    paths = {
        "MODEL": "/shared/models/Qwen2.5-Math-1.5B",
        "DATA": "/shared/data/math",
        "RUNS": "/shared/etr_runs",
    }
    args = shlex.split(re.sub(r"\$(\w+)", lambda m: paths[m.group(1)], command))
    return args[args.index("--") + 1 :]


@pytest.mark.parametrize("algorithm", ["etr", "grpo", "dr_grpo", "clip_higher"])
def test_the_gpu_recipe_as_the_cluster_page_submits_it_composes_and_validates(algorithm):
    cfg = compose_config([*cluster_submit_overrides(), f"algorithm={algorithm}"])
    assert cfg.model.path == "/shared/models/Qwen2.5-Math-1.5B" and cfg.model.dtype == "bfloat16"
    assert (cfg.data.source, cfg.data.question_key, cfg.data.answer_key) == ("jsonl", "problem", "solution")
    assert cfg.data.train_size is None and cfg.data.eval_size is None  # every row of the user's files
    assert (cfg.rollout.engine, cfg.rollout.max_new_tokens, cfg.rollout.vllm.max_model_len) == (
        "vllm",
        3000,
        4096,
    )
    assert cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens <= cfg.rollout.vllm.max_model_len
    assert (cfg.learner.lr, cfg.learner.warmup_steps) == (1e-6, 80)
    assert (cfg.trainer.prompts_per_step, cfg.rollout.group_size) == (128, 8)
    assert (cfg.trainer.eval_every, cfg.trainer.save_every, cfg.trainer.eval_at_start) == (10, 20, True)
    assert (cfg.learner.num_gpus_per_rank, cfg.rollout.num_gpus_per_worker, cfg.sync.transport) == (
        1,
        1,
        "nccl",
    )
    names = {"etr": "etr.adv-grpo", "grpo": "grpo.adv-grpo", "dr_grpo": "grpo.adv-dr_grpo"}
    assert cfg.trainer.experiment == f"gpu_math.{names.get(algorithm, f'{algorithm}.adv-grpo')}"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_laptop_page(journeys):
    output = journeys.run("laptop")
    run = journeys.root / "runs" / "laptop"
    assert "step 2/2 | reward" in output  # the plain per-step line: the output is not a terminal
    assert "unknown config key 'algorithm.etr.lamda_micro'" in output and "refused, as it should be" in output
    assert [row["step"] for row in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    assert (run / "checkpoints" / "latest").read_text() == "step_2"


@pytest.mark.slow
def test_monitor_resume_page_continues_the_laptop_run(journeys):
    output = journeys.run("monitor_resume")
    run = journeys.root / "runs" / "laptop"
    assert f"etr_dist: resuming {Path('runs/laptop')} from step_2" in output
    assert "step 3/3 | reward" in output
    assert [row["step"] for row in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    assert (run / "checkpoints" / "latest").read_text() == "step_3"


@pytest.mark.slow
def test_export_page_exports_and_scores_the_run(journeys):
    journeys.run("export")
    exported = journeys.root / "exported" / "laptop"
    assert (exported / "config.json").is_file() and (exported / "model.safetensors").is_file()
    summary = json.loads((journeys.root / "evals" / "laptop" / "summary.json").read_text())
    assert summary["sets"]["arithmetic"]["items"] == 100


@pytest.mark.slow
def test_compare_page_gives_each_algorithm_its_own_experiment(journeys):
    output = journeys.run("compare")
    runs = journeys.root / "runs"
    for experiment in ("grpo.adv-grpo.arithmetic", "grpo.adv-dr_grpo.arithmetic"):
        assert experiment in output  # `ls runs/`
        (run,) = (runs / experiment).iterdir()
        assert [row["step"] for row in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    dr_grpo = (runs / "grpo.adv-dr_grpo.arithmetic").iterdir().__next__() / "config.yaml"
    assert "adv_estimator: dr_grpo" in dr_grpo.read_text()


@pytest.mark.slow
def test_cluster_page_submits_the_gpu_recipe_as_a_ray_job(journeys):
    output = journeys.run("cluster")
    assert "token auth: token" in output  # the one-machine head kept Ray's token authentication on
    assert re.search(r"Job 'raysubmit_\w+' succeeded", output)
    (run,) = (journeys.root / "cluster_runs" / "gpu_math.etr.adv-grpo").iterdir()
    assert (run / "checkpoints" / "latest").read_text() == "step_1"
    rows = read_jsonl(run / "metrics.jsonl")
    assert [row["step"] for row in rows if "eval/jsonl/pass@1" in row] == [0, 1]  # at start and at the end
    assert "step 1/1 | reward" in output
