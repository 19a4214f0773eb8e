import time

import pytest

from etr_dist.driver.collector import RolloutProducer, StepRollout


class RecordingCollector:
    """Stands in for RolloutCollector: records which synced version each step's collection started under."""

    def __init__(self, producer_ref: list) -> None:
        self.started_under: dict[int, int] = {}
        self.producer_ref = producer_ref

    def collect(self, step: int, min_version: int = 0) -> StepRollout:
        self.started_under[step] = self.producer_ref[0]._synced_version
        now = time.time()
        return StepRollout(step, [], [], {}, now, now)


@pytest.mark.parametrize("max_staleness", [0, 1, 2])
def test_producer_never_runs_ahead_of_the_bound(max_staleness):
    ref: list = []
    collector = RecordingCollector(ref)
    producer = RolloutProducer(collector, start_step=0, total_steps=6, max_staleness=max_staleness)
    ref.append(producer)
    producer.start()
    for step in range(6):
        rollout = producer.get(timeout_s=5)
        assert rollout.step == step
        time.sleep(0.01)  # give the producer a chance to run ahead if it (wrongly) could
        producer.set_synced_version(step + 1)
    producer.join(timeout=5)
    for step, version in collector.started_under.items():
        assert version >= step - max_staleness
    if max_staleness == 0:
        assert collector.started_under == {s: s for s in range(6)}


def test_producer_failure_reaches_the_training_loop():
    class Broken:
        def collect(self, step, min_version=0):
            raise OSError("worker died")

    producer = RolloutProducer(Broken(), 0, 3, 0)
    producer.start()
    with pytest.raises(RuntimeError, match="rollout producer failed") as info:
        producer.get(timeout_s=5)
    assert isinstance(info.value.__cause__, OSError)


def test_stop_releases_a_waiting_producer():
    ref: list = []
    producer = RolloutProducer(RecordingCollector(ref), 0, 5, 0)
    ref.append(producer)
    producer.start()
    producer.get(timeout_s=5)  # step 0 done; step 1 waits for version 1
    producer.stop()
    producer.join(timeout=5)
    assert not producer.is_alive()
