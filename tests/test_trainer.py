"""The training loop's data order: new every epoch, and a resumed epoch sees the same batches."""

import pytest
import torch

from spikebert.data.batching import Encoded, LengthBucketSampler
from spikebert.training.trainer import TrainArgs, fit


def test_batches_are_length_bucketed_and_seeded():
    lengths = [(i * 37) % 50 + 1 for i in range(400)]
    s = LengthBucketSampler(lengths, 16, shuffle=True, seed=1, pool=5)
    batches = s.batches()
    assert sorted(i for b in batches for i in b) == list(range(400))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches would spread over most of 1..50
    assert LengthBucketSampler(lengths, 16, shuffle=True, seed=1, pool=5).batches() == batches
    s.set_epoch(1)
    assert s.batches() != batches


class Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return (self.w * x.float().mean()).sum()


class FakeClock:
    """The trainer's only source of time, advanced by the test alone (one call to ``advance`` a step):
    budgets and reported seconds are exact on any machine, however loaded."""

    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float):
        self.now += seconds


def _records(folder):
    import json

    return [json.loads(ln) for ln in (folder / "log.jsonl").read_text().splitlines() if ln.strip()]


def test_every_epoch_has_its_own_order_and_resume_replays_it(tmp_path):
    data = Encoded([[1] * (i % 5 + 1) for i in range(48)])
    seen = []

    def loss_fn(model, batch, step, epoch):
        seen.append(batch["index"].tolist())
        return model(batch["input_ids"]), {}

    full = TrainArgs(output=str(tmp_path / "a"), epochs=3, batch_size=8, save_every=4, lr=1e-3)
    fit(Recorder(), data, full, loss_fn)
    epochs = [seen[i * 6:(i + 1) * 6] for i in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # accelerate must not replay epoch 0's order
    reference = list(seen)

    # stop after 8 steps (a checkpoint at step 8), then resume: the remaining batches are the same
    seen.clear()
    part = TrainArgs(output=str(tmp_path / "b"), epochs=3, max_steps=8, batch_size=8, save_every=4, lr=1e-3)
    fit(Recorder(), data, part, loss_fn)
    seen.clear()
    resumed = TrainArgs(output=str(tmp_path / "b"), epochs=3, batch_size=8, save_every=4, lr=1e-3, resume=True)
    fit(Recorder(), data, resumed, loss_fn)
    assert seen == reference[8:]


def test_micro_batches_make_the_same_step_as_the_whole_batch():
    from spikebert.training.trainer import micro_batches

    torch.manual_seed(0)
    batch = {"input_ids": torch.randint(0, 9, (8, 6)), "labels": torch.randint(0, 2, (8,))}
    parts = micro_batches(batch, max_tokens=20)
    assert [p["input_ids"].shape[0] for p in parts] == [3, 3, 2]  # 3 rows × 6 = 18 slots fit in 20
    assert torch.equal(torch.cat([p["input_ids"] for p in parts]), batch["input_ids"])
    assert micro_batches(batch, max_tokens=48) == [batch] and micro_batches(batch, None) == [batch]

    layer = torch.nn.Linear(6, 2)

    def loss_of(b):
        return torch.nn.functional.cross_entropy(layer(b["input_ids"].float()), b["labels"])

    loss_of(batch).backward()
    whole = layer.weight.grad.clone()
    layer.weight.grad = None
    for p in parts:
        (loss_of(p) * p["input_ids"].shape[0] / 8).backward()
    assert torch.allclose(layer.weight.grad, whole, atol=1e-6)


def test_seconds_count_the_killed_run_too_and_the_dev_line_says_what_was_measured(tmp_path, capsys):
    data = Encoded([[1] * (i % 5 + 1) for i in range(32)])
    clock, per_step = FakeClock(), {"seconds": 0.25}

    def loss_fn(model, batch, step, epoch):
        clock.advance(per_step["seconds"])
        return model(batch["input_ids"]), {}

    # an evaluation that is not an accuracy names itself in "text"; the dev line must print it
    def evaluate(model, acc):
        return {"score": -2.5, "text": "MLM loss 2.5000"}

    first = TrainArgs(output=str(tmp_path / "r"), epochs=2, max_steps=4, batch_size=8, save_every=2, lr=1e-3)
    killed = fit(Recorder(), data, first, loss_fn, evaluate=evaluate, clock=clock)
    assert (killed.step, killed.seconds) == (4, 1.0)
    out = capsys.readouterr().out
    assert "dev MLM loss 2.5000" in out and "%" not in out.split("dev ", 1)[1].splitlines()[0]

    # another process: its clock reads anything; its own 4 steps take 0.5 s each
    clock.now, per_step["seconds"] = 1000.0, 0.5
    resumed = fit(Recorder(), data, TrainArgs(output=str(tmp_path / "r"), epochs=2, batch_size=8, save_every=2,
                                              lr=1e-3, resume=True), loss_fn, evaluate=evaluate, clock=clock)
    assert resumed.step == 8
    assert resumed.seconds == 1.0 + 4 * 0.5  # the 4 steps before the stop count too


def test_resume_with_another_lr_uses_it(tmp_path):
    """The advice after a NaN loss is "try a lower --lr" with --resume: the restored schedule must
    not bring the old rate back."""
    import json

    data = Encoded([[1] * (i % 5 + 1) for i in range(32)])

    def loss_fn(model, batch, step, epoch):
        return model(batch["input_ids"]), {}

    def lrs(folder):
        return {r["step"]: r["lr"] for r in map(json.loads, (folder / "log.jsonl").read_text().splitlines())
                if "lr" in r}

    whole = tmp_path / "whole"
    fit(Recorder(), data, TrainArgs(output=str(whole), epochs=2, batch_size=8, lr=1e-3, warmup=0.0), loss_fn)
    part, calls = tmp_path / "part", []

    def killed_at_step_5(model, batch, step, epoch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # killed; the last checkpoint is step 4's
        return loss_fn(model, batch, step, epoch)

    with pytest.raises(KeyboardInterrupt):
        fit(Recorder(), data, TrainArgs(output=str(part), epochs=2, batch_size=8, save_every=2, lr=1e-3, warmup=0.0),
            killed_at_step_5)
    fit(Recorder(), data, TrainArgs(output=str(part), epochs=2, batch_size=8, save_every=2, lr=1e-4, warmup=0.0,
                                    resume=True), loss_fn)
    full, resumed = lrs(whole), lrs(part)
    assert resumed[2] == full[2]  # before the stop: the old rate
    for step in (5, 6, 7):  # after: the same cosine position, a tenth of the height
        assert abs(resumed[step] - full[step] / 10) < 1e-12, (step, resumed[step], full[step])


def test_schedule_warms_up_decays_to_zero_at_its_horizon_and_stays_there():
    from spikebert.errors import SpikeBertError
    from spikebert.training.trainer import Schedule

    cos, lin = Schedule("cosine", 0.1, 100), Schedule("linear", 0.1, 100)
    assert cos(0) == 0 and cos(5) == pytest.approx(0.5) and cos(10) == pytest.approx(1.0)
    assert cos(55) == pytest.approx(0.5) and lin(55) == pytest.approx(0.5)
    assert cos(100) == pytest.approx(0) and cos(150) == pytest.approx(0) and lin(150) == 0
    assert Schedule("constant", 0.0, 100)(150) == 1.0
    with pytest.raises(SpikeBertError, match="unknown learning-rate schedule"):
        Schedule("polynomial", 0.1, 100)


def test_a_time_budget_ends_the_learning_rate_decay_when_the_time_runs_out(tmp_path):
    """A run bounded by --max-minutes, planned for far more steps than the time allows, must not
    stop with the rate still near its peak: from step 10 on, the schedule is fitted to the time as
    it is measured. Every step takes exactly one second of a fake clock and the budget is one
    minute, so the budget runs out at step 60 exactly, and the fitted decay ends there."""
    import math

    data = Encoded([[1] * (i % 5 + 1) for i in range(64)])
    clock = FakeClock()

    def loss_fn(model, batch, step, epoch):
        clock.advance(1.0)
        return model(batch["input_ids"]), {}

    out = tmp_path / "t"
    args = TrainArgs(output=str(out), epochs=1000, batch_size=8, lr=1e-3, warmup=0.0, save_every=10**6,
                     max_minutes=1.0)  # 8 steps an epoch: 8,000 steps planned
    result = fit(Recorder(), data, args, loss_fn, clock=clock)
    assert (result.stopped_by, result.step, result.seconds) == ("max_minutes", 60, 60.0)
    lrs = {r["step"]: r["lr"] for r in _records(out) if "lr" in r}
    assert sorted(lrs) == [1, 10, 20, 30, 40, 50, 60]
    assert lrs[1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 8000)))  # the peak of an 8,000-step plan
    for step in (20, 30, 40, 50):  # fitted at step 10: a cosine ending at step 60
        assert lrs[step] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * step / 60)), rel=1e-9), step
    assert lrs[60] == 0.0
    # the fitted horizon is saved with the scheduler (refitted at step 60 itself: one step ahead)
    state = torch.load(out / "checkpoints" / "step-0000060" / "trainer_state.pt", weights_only=True)
    assert state["scheduler"]["lr_lambdas"][0]["horizon"] == 61 and state["elapsed"] == 60.0

    # killed after that last checkpoint (before the job's metrics.json): --resume ends where it was
    again = fit(Recorder(), data, TrainArgs(**{**args.__dict__, "resume": True}), loss_fn, clock=FakeClock(500.0))
    assert (again.stopped_by, again.step, again.seconds) == ("max_minutes", 60, 60.0)
    assert {r["step"]: r["lr"] for r in _records(out) if "lr" in r} == lrs


@pytest.mark.parametrize("limits, steps, reason", [
    (dict(epochs=2), 8, "epochs"),
    (dict(epochs=2, max_steps=5), 5, "max_steps"),
    (dict(epochs=2, max_minutes=0.05), 3, "max_minutes"),  # 3 s, before the schedule is fitted (step 10)
    (dict(epochs=None, max_steps=6, max_minutes=0.1), 6, "max_steps"),  # both at step 6: the steps are named
    (dict(epochs=4, max_minutes=10.0), 16, "epochs"),  # time to spare: the planned end, fitted or not
])
def test_the_run_stops_for_the_first_limit_reached_and_names_it(tmp_path, limits, steps, reason):
    data = Encoded([[1] * (i % 5 + 1) for i in range(32)])  # 4 steps an epoch
    clock, seen = FakeClock(), []

    def loss_fn(model, batch, step, epoch):
        seen.append((step, epoch))
        clock.advance(1.0)
        return model(batch["input_ids"]), {}

    args = TrainArgs(output=str(tmp_path / "s"), batch_size=8, lr=1e-3, save_every=10**6, **limits)
    result = fit(Recorder(), data, args, loss_fn, clock=clock)
    assert (result.step, result.stopped_by, result.seconds) == (steps, reason, float(steps))
    assert seen == [(s, s // 4) for s in range(steps)]  # loss_fn is told the step and the real epoch
    assert max(int(p.name.split("-")[1]) for p in (tmp_path / "s" / "checkpoints").glob("step-*")) == steps
