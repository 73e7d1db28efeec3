"""The one training loop every command uses (teacher fine-tuning and pre-training, both
distillation stages, direct training), on Hugging Face ``accelerate``.

Read it top to bottom: set up → (resume) → for each epoch, for each batch: loss, backward, step,
log, checkpoint; evaluate on dev at each epoch end and keep the best; publish the best model.

- ``accelerate launch`` / ``torchrun`` with N processes shard the batches, synchronise gradients
  (DDP) and gather dev predictions from every shard; only the main process writes files.
- A checkpoint (weights, optimiser, scheduler, step, RNG states, best score) is written atomically
  every ``save_every`` steps and at every epoch end; ``resume=True`` continues from it and ends
  with the same result as a run that was never stopped (the batch order is a function of seed and
  epoch, and the resumed epoch skips the batches already seen).
- A loss that is NaN or infinite stops the run, naming the step; the last checkpoint stays.
- A run bounded by ``max_minutes`` fits its learning-rate schedule to the time: the decay ends
  at the step the budget is expected to run out at, measured as the run goes.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from spikebert.data.batching import Encoded, make_loader
from spikebert.training.checkpoint import (check_output_dir, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint,
                         set_rng_state)
from spikebert.errors import SpikeBertError


@dataclass
class TrainArgs:
    output: str
    seed: int = 42
    epochs: float | None = 3.0  # None: bounded by max_steps alone
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of the steps
    schedule: str = "cosine"  # linear, cosine or constant, after a linear warm-up
    max_grad_norm: float = 1.0
    save_every: int = 200  # steps; checkpoints also at every epoch end
    max_batch_tokens: int | None = 1024  # larger batches (batch × length) run as accumulated micro-batches
    eval_every: int | None = None  # steps; None: at each epoch end
    resume: bool = False


@dataclass
class FitResult:
    step: int
    best_score: float | None
    best_step: int | None
    history: list = field(default_factory=list)
    seconds: float = 0.0
    stopped_by: str = "epochs"

    def best_record(self) -> dict:
        """The dev record of the best step (a resumed run may not have made that evaluation itself)."""
        return next((h for h in self.history if h.get("step") == self.best_step), {})


def make_accelerator(seed: int):
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from accelerate.utils import DataLoaderConfiguration

    mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # split_batches: --batch-size is the global batch; N processes each take 1/N of every batch,
    # so a run on N processes sees exactly the batches a run on one process sees
    acc = Accelerator(mixed_precision=mixed, dataloader_config=DataLoaderConfiguration(split_batches=True))
    set_seed(seed)
    return acc


class JsonlLog:
    """Append-only metrics log (one JSON object a line) a user can load and plot."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = Path(path), enabled

    def truncate_after(self, step: int):
        """On resume: drop lines the killed run wrote after its last checkpoint."""
        if not self.enabled or not self.path.exists():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
        self.path.write_text("".join(k + "\n" for k in keep))

    def write(self, **record):
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")


def micro_batches(batch: dict, max_tokens: int | None) -> list[dict]:
    """The batch, or equal slices of it whose token slots (rows × padded length) fit ``max_tokens``:
    one optimiser step over them, gradients accumulated, is the step over the whole batch."""
    rows, length = batch["input_ids"].shape
    if not max_tokens or rows * length <= max_tokens or rows == 1:
        return [batch]
    size = max(1, max_tokens // length)
    return [{k: v[i:i + size] for k, v in batch.items()} for i in range(0, rows, size)]


def last_logged(folder, key: str = "loss") -> float | None:
    """The last value of ``key`` in a run's ``log.jsonl`` (None if it never logged one)."""
    log = Path(folder) / "log.jsonl"
    if not log.exists():
        return None
    values = [json.loads(ln).get(key) for ln in log.read_text().splitlines() if ln.strip()]
    values = [v for v in values if v is not None]
    return values[-1] if values else None


class Schedule:
    """The learning-rate factor at a step: linear warm-up over ``warmup`` of the horizon, then linear
    or cosine decay to 0 at ``horizon`` (or constant). A time budget moves the horizon (see
    :meth:`fit_to_budget`); it is saved with the scheduler, so a resumed run keeps it."""

    KINDS = ("linear", "cosine", "constant")

    def __init__(self, kind: str, warmup: float, horizon: int):
        if kind not in self.KINDS:
            raise SpikeBertError(f"unknown learning-rate schedule {kind!r}: use one of {', '.join(self.KINDS)}")
        self.kind, self.warmup, self.horizon = kind, warmup, horizon

    def __call__(self, step: int) -> float:
        warm = int(self.warmup * self.horizon)
        if step < warm:
            return step / warm
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, self.horizon - warm))
        return 1.0 - progress if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    def fit_to_budget(self, step: int, planned: int, seconds: float, budget: float):
        """After ``step`` steps in ``seconds`` (evaluations included), end at the step the
        ``budget`` (seconds) is expected to last to, never beyond the ``planned`` steps."""
        expected = step + int((budget - seconds) * step / seconds)
        self.horizon = max(step + 1, min(planned, expected))


def _honour_new_lr(optimizer, scheduler, lr: float, verbose: bool):
    """A resumed run given another ``--lr`` (the advice after a NaN loss) uses it: the restored
    schedule keeps its shape and position, scaled to the new peak rate."""
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps the scheduler
    old = inner.base_lrs[0]
    if math.isclose(old, lr, rel_tol=1e-9):
        return
    inner.base_lrs = [lr for _ in inner.base_lrs]
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        group["lr"] *= lr / old
    inner._last_lr = [g["lr"] for g in optimizer.param_groups]
    if verbose:
        print(f"--lr {lr:g} replaces the checkpoint's {old:g}; the schedule goes on from where it stopped")


def fit(trainable: torch.nn.Module, train_set: Encoded, args: TrainArgs,
        loss_fn: Callable[[torch.nn.Module, dict, int, int], tuple[torch.Tensor, dict]],
        evaluate: Callable[[torch.nn.Module, object], dict] | None = None,
        on_best: Callable[[torch.nn.Module, dict], None] | None = None,
        accelerator=None, desc: str = "train") -> FitResult:
    """Train ``trainable`` on ``train_set``.

    ``loss_fn(model, batch, step, epoch) -> (loss, {term: value})`` computes the loss of one
    (micro-)batch (``model`` is the prepared, possibly DDP-wrapped module; ``step`` the optimiser
    steps done before this one, ``epoch`` the 0-based epoch the batch belongs to). ``evaluate(model, accelerator) -> metrics`` with
    a ``"score"`` key runs on dev; ``on_best(unwrapped_model, metrics)`` saves the best model
    (main process). Without ``evaluate`` the last model counts as best.
    """
    acc = accelerator or make_accelerator(args.seed)
    out = Path(args.output)
    if acc.is_main_process:
        check_output_dir(out, need_bytes=3 * sum(p.numel() * 4 for p in trainable.parameters()))
    log = JsonlLog(out / "log.jsonl", acc.is_main_process)

    if args.batch_size % acc.num_processes:
        raise SpikeBertError(f"--batch-size {args.batch_size} must be a multiple of the {acc.num_processes} processes")
    loader = make_loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    sampler = loader.batch_sampler
    steps_per_epoch = len(sampler)
    by_epochs = max(1, math.ceil(args.epochs * steps_per_epoch)) if args.epochs else None
    total = min(x for x in (args.max_steps, by_epochs) if x) if (args.max_steps or by_epochs) else steps_per_epoch
    log_every = max(1, min(10, total // 50))

    params = [p for p in trainable.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    schedule = Schedule(args.schedule, args.warmup, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model, optimizer, prepared_loader, scheduler = acc.prepare(trainable, optimizer, loader, scheduler)

    step, best_score, best_step, history, elapsed = 0, None, None, [], 0.0
    if args.resume:
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            if acc.is_main_process:
                print(f"no checkpoint in {out}/checkpoints: starting from the beginning")
        else:
            state = load_checkpoint(ckpt, acc.unwrap_model(model))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _honour_new_lr(optimizer, scheduler, args.lr, acc.is_main_process)
            step, elapsed = int(state["step"]), float(state["elapsed"])
            best_score, best_step = state.get("best_score"), state.get("best_step")
            history = json.loads(state.get("history", "[]"))
            set_rng_state(state["rng"])
            if args.max_minutes is None:  # no budget now: the schedule runs to the planned end
                schedule.horizon = total
            log.truncate_after(step)
            if acc.is_main_process:
                print(f"resumed from {ckpt} (step {step} of {total})")

    def checkpoint():
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_checkpoint(out, step, acc.unwrap_model(model), {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "elapsed": elapsed + time.time() - t0, "best_score": best_score, "best_step": best_step,
                "history": json.dumps(history), "rng": rng_state()})
        acc.wait_for_everyone()

    def run_eval(epoch):
        nonlocal best_score, best_step
        if evaluate is None:
            return
        metrics = evaluate(model, acc)
        record = {"step": step, "epoch": epoch, **{f"dev_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}}
        history.append(record)
        log.write(**record)
        if best_score is None or metrics["score"] > best_score:
            best_score, best_step = metrics["score"], step
            if on_best is not None and acc.is_main_process:
                on_best(acc.unwrap_model(model), metrics)
        if acc.is_main_process:
            # an evaluation whose score is not an accuracy describes itself in "text"
            text = metrics.get("text") or f"{metrics['score'] * 100:.2f}%"
            best = "this step" if best_step == step else f"step {best_step}"
            tqdm.write(f"step {step}: dev {text} (best: {best})")

    t0 = time.time()
    stopped_by = "epochs"
    bar = tqdm(total=schedule.horizon, initial=step, desc=desc, disable=not acc.is_main_process, dynamic_ncols=True)
    model.train()
    while step < schedule.horizon:
        epoch, skip = divmod(step, steps_per_epoch)
        # accelerate's loader re-sets the sampler's epoch to its own counter when iterated, and that
        # counter only advances on an exhausted loader: keep both at the true epoch
        prepared_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        batches = acc.skip_first_batches(prepared_loader, skip) if skip else prepared_loader
        for batch in batches:
            parts = micro_batches(batch, args.max_batch_tokens)
            rows = batch["input_ids"].shape[0]
            loss, terms = 0.0, {}
            for i, part in enumerate(parts):
                share = part["input_ids"].shape[0] / rows
                # gradients are synchronised across processes once, on the last micro-batch
                with (acc.no_sync(model) if i < len(parts) - 1 else nullcontext()):
                    part_loss, part_terms = loss_fn(model, part, step, epoch)
                    if not torch.isfinite(part_loss):
                        bar.close()  # the error line must not be glued to the progress bar
                        last = latest_checkpoint(out)
                        raise SpikeBertError(f"the loss became {part_loss.item()} at step {step + 1}; stopped. "
                                             f"The last checkpoint, {last or '(none yet)'}, is kept; "
                                             "go on from it with --resume and a lower --lr")
                    acc.backward(part_loss * share)
                loss = loss + part_loss.detach() * share
                for k, v in part_terms.items():
                    terms[k] = terms.get(k, 0.0) + v.detach() * share
            loss = torch.as_tensor(loss)
            if args.max_grad_norm:
                acc.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if step % log_every == 0 or step == 1:
                # the mean over processes: each process saw 1/N of the batch
                logged = {"loss": loss.detach(), **{k: v.detach().float() for k, v in terms.items()}}
                if acc.num_processes > 1:
                    logged = {k: acc.reduce(v.reshape(()).clone(), reduction="mean") for k, v in logged.items()}
                logged = {k: float(v) for k, v in logged.items()}
                bar.set_postfix(loss=f"{logged['loss']:.4f}")
                log.write(step=step, epoch=step / steps_per_epoch, lr=scheduler.get_last_lr()[0], **logged)
            epoch_end = step % steps_per_epoch == 0
            spent = elapsed + time.time() - t0
            if args.max_minutes is not None and step >= 10:  # the decay ends when the time does
                schedule.fit_to_budget(step, total, spent, args.max_minutes * 60)
                bar.total = schedule.horizon
            end = step >= schedule.horizon
            over_time = args.max_minutes is not None and (spent / 60 >= args.max_minutes or (end and step < total))
            if epoch_end or end or (args.eval_every and step % args.eval_every == 0) or over_time:
                run_eval(step / steps_per_epoch)
            if step % args.save_every == 0 or epoch_end or end or over_time:
                checkpoint()
            if over_time:
                stopped_by = "max_minutes"
                break
            if end or epoch_end:
                break
        if stopped_by == "max_minutes":
            break
    bar.close()
    if evaluate is None and on_best is not None and acc.is_main_process:
        on_best(acc.unwrap_model(model), {})
        best_step = step
    if step >= (args.max_steps or 10**12):
        stopped_by = "max_steps"
    return FitResult(step, best_score, best_step, history, elapsed + time.time() - t0, stopped_by)
