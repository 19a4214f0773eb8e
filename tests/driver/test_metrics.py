"""The console side of the metrics sink: one plain line per step wherever stdout is not a terminal."""

from etr_dist.driver.metrics import MetricsLogger, step_line

STEP = {
    "critic/score/mean": 0.4375,
    "reward/accuracy": 0.40625,
    "actor/entropy": 0.91234,
    "response_length/mean": 41.4,
    "timing_s/gen": 12.34,
    "timing_s/learn": 8.06,
    "timing_s/sync": 0.41,
    "timing_s/step": 21.2,
    "perf/tokens_per_s": 523.0,
}


def test_a_job_log_gets_one_plain_line_per_step(tmp_path, capsys):
    logger = MetricsLogger(tmp_path, tensorboard=False, progress_bar=True, total_steps=10)
    for step in (1, 2):
        logger.log(step, STEP)
        logger.advance(step, {**STEP, **({"eval/math/pass@1": 0.5} if step == 2 else {})})
    logger.close()
    lines = capsys.readouterr().out.splitlines()  # captured: not a terminal, as in `ray job logs`
    assert lines == [
        "step 1/10 | reward 0.438 | pass rate 0.406 | entropy 0.912 | response len 41 | gen 12.3s | "
        "learn 8.1s | sync 0.4s | step 21.2s",
        "step 2/10 | reward 0.438 | pass rate 0.406 | entropy 0.912 | response len 41 | gen 12.3s | "
        "learn 8.1s | sync 0.4s | step 21.2s | eval/math/pass@1 0.500",
    ]


def test_a_step_line_leaves_out_what_the_step_did_not_measure():
    assert step_line(3, 5, {"reward/accuracy": 1.0, "timing_s/step": 2.0}) == (
        "step 3/5 | pass rate 1.000 | step 2.0s"
    )
