"""Where a run's time goes: the loop timer's accounting, and the trainer's itemised costs."""

from __future__ import annotations

import json

import pytest

from unpaired import hookimpl
from unpaired.loop import timing
from unpaired.loop.timing import DATA, STEP, LoopTimer
from unpaired.loop.trainer import Trainer


@pytest.fixture
def clock(monkeypatch):
    """A fake ``time.perf_counter`` for unpaired.timing: ``clock.advance(s)`` moves it."""

    class Clock:
        now = 100.0

        def advance(self, seconds):
            self.now += seconds

    c = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", lambda: c.now)
    return c


def test_sections_are_exclusive_and_add_up_to_the_wall_time(clock):
    timer = LoopTimer()
    timer.start()
    with timer.section("step"):
        clock.advance(2.0)
    with timer.section("after_step: Cadence"):
        clock.advance(0.5)
        with timer.section("checkpoint"):  # written by the handler: charged to itself only
            clock.advance(3.0)
        clock.advance(0.25)
    clock.advance(1.0)  # the loop itself
    timer.stop()
    clock.advance(50.0)  # after stop: not timed
    assert timer.summary() == {"checkpoint": 3.0, "step": 2.0, "after_step: Cadence": 0.75, "other": 1.0,
                               "wall": 6.75}
    assert timer.calls == {"step": 1, "after_step: Cadence": 1, "checkpoint": 1}


def test_the_table_sums_the_smallest_parts(clock):
    timer = LoopTimer()
    timer.start()
    for name, seconds in (("training step", 9.0), ("log: A", 0.004), ("log: B", 0.003), ("evaluate: E", 0.5)):
        with timer.section(name):
            clock.advance(seconds)
    clock.advance(0.493)
    timer.stop()
    lines = timer.table(iterations=100, pairs=800).splitlines()
    assert lines[0] == "where the time went: 10.0 s for 100 iterations (80.0 training pairs/s)"
    assert [line.split()[:2] for line in lines[1:]] == [["training", "step"], ["evaluate:", "E"], ["2", "smaller"],
                                                        ["other", "(the"]]
    assert lines[1].split()[-4:] == ["90.00", "ms/it", "90.0", "%"] and lines[3].split()[-4:-2] == ["0.07", "ms/it"]


def test_iterate_and_wrap_charge_their_calls(clock):
    timer = LoopTimer()

    def batches():
        for i in range(3):
            clock.advance(0.1)
            yield i

    def handler(x):
        clock.advance(0.2)
        return x * 2

    timed = timer.wrap(handler, "after_step: H")
    assert [timed(b) for b in timer.iterate(batches())] == [0, 2, 4]
    assert timer.calls == {DATA: 4, "after_step: H": 3}  # the 4th next() ends the iteration
    assert timer.seconds[DATA] == pytest.approx(0.3) and timer.seconds["after_step: H"] == pytest.approx(0.6)


def test_a_section_that_raises_is_still_charged(clock):
    timer = LoopTimer()
    with pytest.raises(ValueError), timer.section("step"):
        clock.advance(1.5)
        raise ValueError
    assert timer.seconds["step"] == 1.5


class SlowHandler:
    """A plugin's after-step handler, to see it named in the timings."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def unpaired_after_step(self, trainer):
        self.calls += 1


@pytest.mark.slow
def test_the_trainer_itemises_its_loop_in_run_json(tiny_recipe, tmp_path):
    handler = SlowHandler()
    trainer = Trainer(tiny_recipe("train.checkpoint_every=4"), hooks=[handler])
    result = trainer.fit()
    assert result.iteration == 16 and trainer.samples == 64  # 32 pairs, batch 4, 2 epochs
    timings = json.loads((tmp_path / "run" / "run.json").read_text())["timings"]
    calls = trainer.timer.calls
    assert calls[STEP] == 16 and calls[DATA] == 16 + 2  # one more next() per epoch ends it
    assert calls["after_step: SlowHandler"] == handler.calls == 16
    assert calls["after_step: LossLog"] == 16 and calls["log: JsonlLog"] >= 8  # log_every=2
    assert calls["checkpoint (write)"] == 4  # iterations 4, 8, 12, 16 (the end adds none)
    assert {STEP, DATA, "checkpoint (write)", "after_step: SlowHandler", "other", "wall"} <= set(timings)
    parts = sum(v for k, v in timings.items() if k != "wall")
    assert parts == pytest.approx(timings["wall"], abs=0.01)
    assert timings[STEP] > 0.2 * timings["wall"]  # most of a run is its steps, even at toy size
    table = trainer.timing_table()
    assert table.startswith("where the time went: ") and "16 iterations" in table and f"  {STEP} " in table
    more = Trainer.resume(tmp_path / "run", ["train.epochs=3"])
    assert more.fit().iteration == 24
    assert "for 8 iterations" in more.timing_table()  # this session's, not the run's 24
