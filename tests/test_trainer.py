"""The training loop's data order: new every epoch, and a resumed epoch sees the same batches."""

import torch

from spikebert.batching import Encoded, LengthBucketSampler
from spikebert.trainer import TrainArgs, fit


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


def test_every_epoch_has_its_own_order_and_resume_replays_it(tmp_path):
    data = Encoded([[1] * (i % 5 + 1) for i in range(48)])
    seen = []

    def loss_fn(model, batch):
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
    part.epochs = 3
    fit(Recorder(), data, part, loss_fn)
    seen.clear()
    resumed = TrainArgs(output=str(tmp_path / "b"), epochs=3, batch_size=8, save_every=4, lr=1e-3, resume=True)
    fit(Recorder(), data, resumed, loss_fn)
    assert seen == reference[8:]


def test_micro_batches_make_the_same_step_as_the_whole_batch():
    from spikebert.trainer import micro_batches

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
