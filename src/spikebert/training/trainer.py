"""The one training loop every command uses (teacher fine-tuning and pre-training, both
distillation stages, direct training), on Hugging Face ``accelerate``.

Read :func:`fit` top to bottom: set up → resume → for each batch (epoch after epoch): one train
step (micro-batches, accumulated gradients, the NaN check), log, fit the schedule to the time, the
stop reason; evaluate on dev at each epoch end (and every ``eval_every`` steps) and keep the best,
checkpoint; at the end, publish the last model when there is no dev evaluation.

- ``accelerate launch`` / ``torchrun`` with N processes shard the batches, synchronise gradients
  (DDP) and gather dev predictions from every shard; only the main process writes files. Without
  CUDA, ``torchrun --nproc_per_node N`` makes N CPU processes (gloo); ``accelerate launch --cpu
  --num_processes N`` starts one process only (accelerate's launcher runs CPU groups through
  ``mpirun`` with a hostfile).
- A checkpoint (weights, optimiser, scheduler, step, RNG states, best score) is written atomically
  every ``save_every`` steps and at every epoch end; ``resume=True`` continues from it and ends
  with the same result as a run that was never stopped (the batch order is a function of seed and
  epoch, and the resumed epoch skips the batches already seen).
- A loss that is NaN or infinite stops the run, naming the step; the last checkpoint stays. On CUDA
  the check stays on the device and is read at log, evaluation and checkpoint time (no per-step
  synchronisation); the step named is still the first bad one, and no checkpoint is written after it.
- On CUDA the host stays off the critical path (:mod:`spikebert.training.device`): loader workers,
  pinned memory, non-blocking copies, whole batches up to a larger micro-batch budget.
  ``SPIKEBERT_COMPILE=blocks`` compiles the student's blocks (opt-in, any device).
- A run bounded by ``max_minutes`` fits its learning-rate schedule to the time: the decay ends
  at the step the budget is expected to run out at, measured as the run goes. Time comes only
  from ``fit``'s ``clock`` (``time.monotonic`` unless a test gives another).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from spikebert.data.batching import Encoded, make_loader
from spikebert.errors import SpikeBertError
from spikebert.training.checkpoint import (KEEP_CHECKPOINTS, check_output_dir, latest_checkpoint,
                                           load_good_checkpoint, rng_state, save_checkpoint, set_rng_state)
from spikebert.training.device import batch_token_budget, compile_blocks, compile_choice, is_cuda, loader_options


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
    keep_checkpoints: int = KEEP_CHECKPOINTS  # the newest N; a damaged one falls back to the one before
    # larger batches (batch × length) run as accumulated micro-batches (on CUDA: at least
    # spikebert.training.device.CUDA_MAX_BATCH_TOKENS)
    max_batch_tokens: int | None = 1024
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


def make_accelerator(seed: int, unused_parameters: bool = False):
    """The run's Accelerator, seeded. ``unused_parameters``: the loss may leave some trainable
    parameters out, which DistributedDataParallel must be told of on several processes (they then
    get no gradient and stay as they are, as on one process). The distillation stages and direct
    training set it: stage 1 never reads the final norm or the classifier, and stage 2 or direct
    training leave out the feature transforms of the student layers no term reads (all of them
    with ``--w-rep 0`` or in ``train-direct``, some with a partial ``--layer-map``). transformers'
    Trainer sets it by default for the same reason."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed

    mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # several processes without CUDA (torchrun --nproc_per_node N): accelerate makes them one gloo
    # group only when told they are CPU processes; otherwise each would train alone, unsynchronised
    cpu_group = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    # split_batches: --batch-size is the global batch; N processes each take 1/N of every batch,
    # so a run on N processes sees exactly the batches a run on one process sees
    # non_blocking: batches from pinned memory (the loader pins them on CUDA) are copied asynchronously
    acc = Accelerator(cpu=cpu_group, mixed_precision=mixed, dataloader_config=DataLoaderConfiguration(
        split_batches=True, non_blocking=torch.cuda.is_available()),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused_parameters)])
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
    one optimiser step over them, gradients accumulated and each slice weighted by its share of the
    rows (:func:`train_step`), is the step over the whole batch for the terms averaged over rows
    (the KL term). Terms averaged over something else are weighted by rows all the same:
    the feature and attention terms (averaged over real tokens; batches are cut from length-sorted
    pools, so a slice's share of the tokens is close to its share of the rows) and the cross-entropy
    (averaged over the labelled rows; an augmented copy has none, so a slice with few labelled rows
    gives each of them more weight than the whole batch would). Weighting those by their own counts
    would change every CPU run's numbers, so the documented runs keep this weighting."""
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
        ``budget`` (seconds) is expected to last to, never beyond the ``planned`` steps (a budget
        with time to spare ends the run at its planned end, not after it at a rate of 0)."""
        if seconds <= 0:  # a clock that has not moved tells nothing yet
            return
        expected = step + int((budget - seconds) * step / seconds)
        self.horizon = min(planned, max(step + 1, expected))


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


@dataclass
class Run:
    """Everything the steps of one :func:`fit` share: the prepared objects and the counters a
    checkpoint saves (``step``, ``elapsed``, best score, dev history)."""

    args: TrainArgs
    acc: object
    out: Path
    log: JsonlLog
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    loader: object  # the prepared loader; ``sampler`` is its batch sampler (the epoch's order)
    sampler: object
    schedule: Schedule
    total: int  # the planned steps
    steps_per_epoch: int
    clock: Callable[[], float]
    step: int = 0
    elapsed: float = 0.0  # seconds spent before this process started (a resumed run's earlier part)
    started: float = 0.0  # the clock when this process began training
    best_score: float | None = None
    best_step: int | None = None
    history: list = field(default_factory=list)
    bar: object = None
    batch_tokens: int | None = None  # the micro-batch budget on this device
    first_bad: torch.Tensor | None = None  # on CUDA: [step, loss] of the first non-finite loss (NaN: none yet)

    def seconds(self) -> float:
        """Seconds of training so far, the killed runs before a resume included."""
        return self.elapsed + self.clock() - self.started


def fit(trainable: torch.nn.Module, train_set: Encoded, args: TrainArgs,
        loss_fn: Callable[[torch.nn.Module, dict, int, int], tuple[torch.Tensor, dict]],
        evaluate: Callable[[torch.nn.Module, object], dict] | None = None,
        on_best: Callable[[torch.nn.Module, dict], None] | None = None,
        accelerator=None, desc: str = "train", clock: Callable[[], float] = time.monotonic,
        batch_extra: Callable[[dict], dict] | None = None) -> FitResult:
    """Train ``trainable`` on ``train_set``.

    ``loss_fn(model, batch, step, epoch) -> (loss, {term: value})`` computes the loss of one
    (micro-)batch (``model`` is the prepared, possibly DDP-wrapped module; ``step`` the optimiser
    steps done before this one, ``epoch`` the 0-based epoch the batch belongs to).
    ``evaluate(model, accelerator) -> metrics`` with a ``"score"`` key runs on dev (an ``"also"``
    dict in it is logged and kept in the history under its own keys, and never selects);
    ``on_best(unwrapped_model, metrics)`` saves the best model (main process). Without ``evaluate``
    the last model counts as best. ``clock() -> seconds`` is the only source of time (the
    ``max_minutes`` budget, the seconds reported and saved). ``batch_extra(batch) -> {name: tensor}``
    adds per-row tensors to every batch as it is collated (:class:`~spikebert.data.batching.Collator`).
    """
    run = set_up(trainable, train_set, args, accelerator, clock, batch_extra)
    if args.resume:
        resume(run)
    run.started = clock()
    run.bar = tqdm(total=run.schedule.horizon, initial=run.step, desc=desc, disable=not run.acc.is_main_process,
                   dynamic_ncols=True)
    run.model.train()
    batches = epoch_batches(run)
    stop = stop_reason(run, run.seconds())  # a resumed run may be done already
    while stop is None:
        epoch, batch = next(batches)
        loss, terms = train_step(run, batch, loss_fn, epoch)
        log_step(run, loss, terms)
        spent = run.seconds()
        fit_to_time(run, spent)
        stop = stop_reason(run, spent)
        epoch_end = run.step % run.steps_per_epoch == 0
        evaluating = epoch_end or stop or (args.eval_every and run.step % args.eval_every == 0)
        saving = epoch_end or stop or run.step % args.save_every == 0
        if evaluating or saving:
            raise_if_not_finite(run)
        if evaluating:
            run_evaluation(run, evaluate, on_best)
        if saving:
            checkpoint(run)
    run.bar.close()
    if evaluate is None and on_best is not None and run.acc.is_main_process:
        on_best(run.acc.unwrap_model(run.model), {})
        run.best_step = run.step
    return FitResult(run.step, run.best_score, run.best_step, run.history, run.seconds(), stop)


def set_up(trainable, train_set: Encoded, args: TrainArgs, accelerator, clock, batch_extra=None) -> Run:
    """The accelerator, the output folder (checked), the batches, the planned steps, AdamW and the
    learning-rate schedule, all prepared by ``accelerate``."""
    acc = accelerator or make_accelerator(args.seed)
    out = Path(args.output)
    compiling = compile_choice() == "blocks"  # a bad value refused before the folder is made
    if acc.is_main_process:
        check_output_dir(out, need_bytes=3 * sum(p.numel() * 4 for p in trainable.parameters()))
    if args.batch_size % acc.num_processes:
        raise SpikeBertError(f"--batch-size {args.batch_size} must be a multiple of the {acc.num_processes} processes")
    loader = make_loader(train_set, args.batch_size, shuffle=True, seed=args.seed, extra=batch_extra,
                         **loader_options(acc.device))
    steps_per_epoch = len(loader.batch_sampler)
    by_epochs = max(1, math.ceil(args.epochs * steps_per_epoch)) if args.epochs else None
    total = min(x for x in (args.max_steps, by_epochs) if x) if (args.max_steps or by_epochs) else steps_per_epoch
    if compiling and compile_blocks(trainable) and acc.is_main_process:
        print("SPIKEBERT_COMPILE=blocks: the student's spiking blocks run under torch.compile")
    optimizer = adamw(trainable, args)
    schedule = Schedule(args.schedule, args.warmup, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model, optimizer, prepared_loader, scheduler = acc.prepare(trainable, optimizer, loader, scheduler)
    run = Run(args, acc, out, JsonlLog(out / "log.jsonl", acc.is_main_process), model, optimizer, scheduler,
              prepared_loader, loader.batch_sampler, schedule, total, steps_per_epoch, clock)
    run.batch_tokens = batch_token_budget(args.max_batch_tokens, acc.device)
    if is_cuda(acc.device):
        run.first_bad = torch.full((2,), math.nan, device=acc.device)
    return run


def adamw(trainable: torch.nn.Module, args: TrainArgs) -> torch.optim.AdamW:
    """AdamW over the trainable weights; biases and norms (1-d) without weight decay."""
    params = [p for p in trainable.parameters() if p.requires_grad]
    return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
                              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=args.lr)


def resume(run: Run):
    """Restore the newest checkpoint: weights, optimiser, scheduler (with its horizon), counters, RNG
    states; drop the log lines the killed run wrote after it. No checkpoint: start afresh. A damaged
    checkpoint (its manifest) falls back to the one before; only damaged ones: a clear error."""
    acc = run.acc
    found = load_good_checkpoint(run.out, acc.unwrap_model(run.model),
                                 log=print if acc.is_main_process else (lambda _: None))
    if found is None:
        run.log.truncate_after(0)  # a run killed before its first checkpoint starts over
        if acc.is_main_process:
            print(f"no checkpoint in {run.out}/checkpoints: starting from the beginning")
        return
    ckpt, state = found
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    _honour_new_lr(run.optimizer, run.scheduler, run.args.lr, acc.is_main_process)
    run.step, run.elapsed = int(state["step"]), float(state["elapsed"])
    run.best_score, run.best_step = state.get("best_score"), state.get("best_step")
    run.history = json.loads(state.get("history", "[]"))
    set_rng_state(state["rng"])
    if run.args.max_minutes is None:  # no budget now: the schedule runs to the planned end
        run.schedule.horizon = run.total
    run.log.truncate_after(run.step)
    if acc.is_main_process:
        print(f"resumed from {ckpt} (step {run.step} of {run.total})")


def epoch_batches(run: Run):
    """``(epoch, batch)`` from the run's step on, epoch after epoch. An epoch's order is a function of
    (seed, epoch); a resumed epoch skips the batches already seen."""
    while True:
        epoch, skip = divmod(run.step, run.steps_per_epoch)
        # accelerate's loader re-sets the sampler's epoch to its own counter when iterated, and that
        # counter only advances on an exhausted loader: keep both at the true epoch
        run.loader.set_epoch(epoch)
        run.sampler.set_epoch(epoch)
        for batch in run.acc.skip_first_batches(run.loader, skip) if skip else run.loader:
            yield epoch, batch


def train_step(run: Run, batch: dict, loss_fn, epoch: int) -> tuple[torch.Tensor, dict]:
    """One optimiser step over ``batch``, run as micro-batches with accumulated gradients. Returns the
    batch's loss and loss terms (each micro-batch weighted by its share of the rows)."""
    acc, model = run.acc, run.model
    parts = micro_batches(batch, run.batch_tokens)
    rows = batch["input_ids"].shape[0]
    loss, terms = 0.0, {}
    for i, part in enumerate(parts):
        share = part["input_ids"].shape[0] / rows
        # gradients are synchronised across processes once, on the last micro-batch
        with (acc.no_sync(model) if i < len(parts) - 1 else nullcontext()):
            part_loss, part_terms = loss_fn(model, part, run.step, epoch)
            check_finite(run, part_loss)
            acc.backward(part_loss * share)
        loss = loss + part_loss.detach() * share
        for k, v in part_terms.items():
            terms[k] = terms.get(k, 0.0) + v.detach() * share
    if run.args.max_grad_norm:
        acc.clip_grad_norm_(model.parameters(), run.args.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.bar.update(1)
    return torch.as_tensor(loss), terms


def check_finite(run: Run, loss: torch.Tensor):
    """A NaN or infinite loss stops the run, naming the step and the checkpoint kept. On CUDA the
    first bad step and loss are kept on the device, for :func:`raise_if_not_finite` to read later."""
    if run.first_bad is not None:
        loss = loss.detach().float().reshape(())
        here = torch.stack([torch.full_like(loss, run.step + 1), loss])
        run.first_bad = torch.where(run.first_bad[0].isnan() & ~loss.isfinite(), here, run.first_bad)
        return
    if torch.isfinite(loss):
        return
    stop_not_finite(run, loss.item(), run.step + 1)


def raise_if_not_finite(run: Run):
    """On CUDA: stop the run when a loss so far was not finite (one read of the device)."""
    if run.first_bad is None:
        return
    step, loss = run.first_bad.tolist()
    if not math.isnan(step):
        stop_not_finite(run, loss, int(step))


def stop_not_finite(run: Run, loss: float, step: int):
    run.bar.close()  # the error line must not be glued to the progress bar
    last = latest_checkpoint(run.out)
    raise SpikeBertError(f"the loss became {loss} at step {step}; stopped. "
                         f"The last checkpoint, {last or '(none yet)'}, is kept; "
                         "go on from it with --resume and a lower --lr")


def log_step(run: Run, loss: torch.Tensor, terms: dict):
    """Every ``log_every`` steps (and the first): the loss, its terms and the learning rate, to
    ``log.jsonl`` and the progress bar; the mean over processes (each saw 1/N of the batch)."""
    log_every = max(1, min(10, run.total // 50))
    if run.step % log_every and run.step != 1:
        return
    raise_if_not_finite(run)
    logged = {"loss": loss.detach(), **{k: v.detach().float() for k, v in terms.items()}}
    if run.acc.num_processes > 1:
        logged = {k: run.acc.reduce(v.reshape(()).clone(), reduction="mean") for k, v in logged.items()}
    logged = {k: float(v) for k, v in logged.items()}
    run.bar.set_postfix(loss=f"{logged['loss']:.4f}")
    run.log.write(step=run.step, epoch=run.step / run.steps_per_epoch, lr=run.scheduler.get_last_lr()[0], **logged)


def fit_to_time(run: Run, spent: float):
    """With a ``max_minutes`` budget, from step 10 on: the decay ends when the time is expected to."""
    if run.args.max_minutes is None or run.step < 10:
        return
    run.schedule.fit_to_budget(run.step, run.total, spent, run.args.max_minutes * 60)
    run.bar.total = run.schedule.horizon


def stop_reason(run: Run, spent: float) -> str | None:
    """Why the run stops after its current step, or None to go on: ``max_steps`` reached; the
    ``max_minutes`` budget spent (or the schedule fitted to it ended before the planned steps);
    the planned epochs done."""
    args, end = run.args, run.step >= min(run.schedule.horizon, run.total)
    if args.max_steps and run.step >= args.max_steps:
        return "max_steps"
    if args.max_minutes is not None and (spent / 60 >= args.max_minutes or (end and run.step < run.total)):
        return "max_minutes"
    return "epochs" if end else None


def run_evaluation(run: Run, evaluate, on_best):
    """Evaluate on dev, log it, and publish the model when it is the best so far."""
    if evaluate is None:
        return
    acc, step = run.acc, run.step
    metrics = evaluate(run.model, acc)
    # "also": figures logged beside dev's under their own names, never selected on (--eval-file)
    record = {"step": step, "epoch": step / run.steps_per_epoch,
              **{f"dev_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, **metrics.get("also", {})}
    run.history.append(record)
    run.log.write(**record)
    if run.best_score is None or metrics["score"] > run.best_score:
        run.best_score, run.best_step = metrics["score"], step
        if on_best is not None and acc.is_main_process:
            on_best(acc.unwrap_model(run.model), metrics)
    if acc.is_main_process:
        # an evaluation whose score is not an accuracy describes itself in "text"
        text = metrics.get("text") or f"{metrics['score'] * 100:.2f}%"
        best = "this step" if run.best_step == step else f"step {run.best_step}"
        tqdm.write(f"step {step}: dev {text} (best: {best})")


def checkpoint(run: Run):
    """Save the training state atomically (main process; the others wait)."""
    acc = run.acc
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_checkpoint(run.out, run.step, acc.unwrap_model(run.model), {
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(), "step": run.step,
            "elapsed": run.seconds(), "best_score": run.best_score, "best_step": run.best_step,
            "history": json.dumps(run.history), "rng": rng_state()}, keep=run.args.keep_checkpoints)
    acc.wait_for_everyone()
