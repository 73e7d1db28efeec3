"""Stage 2's teacher outputs from the on-disk cache against the live teacher (not a test: it prints
figures).

On a slice of a task's training set plus 1 augmented copy per sentence, batched as the trainer
batches them (length buckets, micro-batches of at most 1024 token slots), and interleaved batch by
batch so that other load on the machine hits both alike:

1. time: the live teacher's forward pass (logits and the hidden states the layer map reads)
   against reading the same outputs from the cache, and the whole stage-2 step (student forward,
   backward, AdamW) for scale; and the one-time cost of building the cache;
2. exactness: the stage-2 loss and each term at the same student weights from the live teacher's
   outputs and from the cache (float32, and float16 hidden states).

``--jobs N`` also runs the real stage-2 job for N steps three ways (live, cached, and live with
micro-batches of 512 token slots: the same loss summed in another order, a control for how much
float rounding alone moves a spiking student's training) and prints how far each run's losses
move from the live run's.

    python benchmarks/teacher_cache.py --teacher runs/sst2/teacher --limit 256 --threads 1
    # a teacher with no task head yet (timing only: its head is random): --fresh-head
    python benchmarks/teacher_cache.py --teacher mpnet --fresh-head --width 384 --depth 6 --limit 128
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--teacher", required=True, help="a fine-tuned teacher folder (or any teacher with --fresh-head)")
    ap.add_argument("--fresh-head", action="store_true", help="give the teacher a new random task head first")
    ap.add_argument("--init", default=None, help="a stage-1 student (default: a fresh teacher-shaped student)")
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--limit", type=int, default=256, help="training sentences (plus 1 augmented copy each)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=0, help="also run the stage-2 job this many steps, three ways")
    ap.add_argument("--work", default=None, help="a scratch folder (default: a temporary one, removed)")
    a = ap.parse_args()

    import torch

    from spikebert.data.tasks import label_fields, load_data
    from spikebert.distill.augment import augment
    from spikebert.distill.config import AugmentConfig, LayerMap, LossWeights, StudentShape
    from spikebert.distill.losses import Distiller, embeddings_from_teacher, student_config, teacher_word_embeddings
    from spikebert.distill.stages import _joined, _train_parts, load_student_init
    from spikebert.distill.teacher_cache import cached_teacher, teacher_fingerprint
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification
    from spikebert.teachers.loading import load_teacher
    from spikebert.data.batching import make_loader
    from spikebert.training.trainer import micro_batches

    torch.set_num_threads(a.threads)
    work = Path(a.work or tempfile.mkdtemp(prefix="teacher-cache-bench-"))
    train = load_data(a.task, "train", a.data_dir, limit=a.limit)
    teacher_path = a.teacher
    if a.fresh_head:
        model, tok = load_teacher(teacher_path, head="new-classifier", labels=train.labels)
        teacher_path = str(work / "teacher")
        model.save_pretrained(teacher_path)
        tok.save_pretrained(teacher_path)
    teacher, tokenizer = load_teacher(teacher_path, head="classifier", labels=train.labels)
    teacher.requires_grad_(False)
    shape = StudentShape(depth=a.depth, width=a.width, time_steps=a.time_steps)
    torch.manual_seed(0)
    if a.init:
        student = load_student_init(a.init, train.labels, shape)
    else:
        config = student_config(teacher.config, shape, **label_fields(train.labels))
        student = SpikeBertForSequenceClassification(config)
        embeddings_from_teacher(student, teacher)
    t_emb = teacher_word_embeddings(teacher)
    lmap = LayerMap.parse(None, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    layers = tuple(t for _, t in lmap.pairs)
    distiller = Distiller(student, LossWeights(), lmap, t_emb).train()
    augmented = augment([ex.text for ex in train.examples], tokenizer, t_emb, AugmentConfig(copies=1, seed=42))
    base, aug_ids = _train_parts(tokenizer, train, augmented, a.max_length)
    data = _joined(base, aug_ids)
    fp = teacher_fingerprint(teacher_path)
    built = {}
    for dtype in ("float32", "float16"):
        t0 = time.perf_counter()
        built[dtype] = cached_teacher(teacher, fp, [base.input_ids, aug_ids], base.pad_token_id, layers, work,
                                      a.max_length, dtype, log=lambda *_: None)
        built[dtype + " s"] = time.perf_counter() - t0
    cache, cache16 = built["float32"], built["float16"]
    opt = torch.optim.AdamW(distiller.parameters(), lr=1e-4)
    t_live = t_cache = t_step = 0.0
    d_loss = {"float32": 0.0, "float16": 0.0}
    d_terms = {"float32": {}, "float16": {}}
    batches = tokens = 0
    for batch in make_loader(data, a.batch_size, shuffle=True, seed=0):
        for part in micro_batches(batch, 1024):
            ids, mask = part["input_ids"], part["attention_mask"]
            t0 = time.perf_counter()
            with torch.no_grad():
                live = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            t1 = time.perf_counter()
            logits, hidden = cache(part["index"], ids.shape[1])
            t2 = time.perf_counter()
            t_live, t_cache = t_live + t1 - t0, t_cache + t2 - t1
            # the loss at these weights from each source of teacher outputs (dropout off: comparable)
            distiller.eval()
            with torch.no_grad():
                ref, ref_terms = distiller(ids, mask, part["labels"], live.logits, live.hidden_states)
                for name, src in (("float32", (logits, hidden)), ("float16", cache16(part["index"], ids.shape[1]))):
                    loss, terms = distiller(ids, mask, part["labels"], *src)
                    d_loss[name] = max(d_loss[name], rel(float(ref), float(loss)))
                    for k, v in terms.items():
                        d_terms[name][k] = max(d_terms[name].get(k, 0.0), rel(float(ref_terms[k]), float(v)))
            distiller.train()
            t3 = time.perf_counter()
            loss, _ = distiller(ids, mask, part["labels"], logits, hidden)
            (loss * ids.shape[0] / batch["input_ids"].shape[0]).backward()
            t_step += time.perf_counter() - t3
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t_step += time.perf_counter() - t3
        batches += 1
        tokens += int(batch["attention_mask"].sum())
    n = batches
    t_step += t_cache  # a cached step: the cache read plus the student's forward, backward and update
    print(f"{a.task}: {len(train.examples)} sentences + {len(augmented)} augmented copies, {n} batches of "
          f"{a.batch_size} ({tokens / n:.0f} real tokens a batch), teacher {a.teacher} "
          f"({teacher.config.num_hidden_layers} x {teacher.config.hidden_size}), student "
          f"{student.config.num_hidden_layers} x {student.config.hidden_size} T={student.config.time_steps}, "
          f"layers cached {list(layers)}, {torch.get_num_threads()} thread(s)")
    print(f"  live teacher forward   {t_live / n * 1000:8.1f} ms a batch")
    print(f"  cache read (float32)   {t_cache / n * 1000:8.1f} ms a batch")
    print(f"  stage-2 step, cached   {t_step / n * 1000:8.1f} ms a batch (live: + the teacher's forward, "
          f"{100 * (t_live - t_cache) / t_step:.1f} % more)")
    for dtype in ("float32", "float16"):
        c = built[dtype]
        print(f"  cache {dtype}: {c.bytes / 1e6:.1f} MB for {sum(len(x) for x in data.input_ids)} tokens, built in "
              f"{built[dtype + ' s']:.1f} s; loss at the same weights vs live: max rel. diff {d_loss[dtype]:.1e} "
              f"(terms: {', '.join(f'{k} {v:.1e}' for k, v in d_terms[dtype].items())})")
    if a.jobs:
        jobs(a, train, teacher_path, shape, work)
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


def jobs(a, train, teacher_path, shape, work: Path):
    """The stage-2 job for ``a.jobs`` steps: live, cached, and live with other micro-batches."""
    from spikebert.data.tasks import load_data
    from spikebert.distill.config import AugmentConfig, DistillConfig, train_args
    from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill

    dev = load_data(a.task, "dev", a.data_dir)
    dev.examples = dev.examples[:32]
    distill = DistillConfig(augment=AugmentConfig(copies=1, seed=42))
    runs = {}
    for name, cached, tokens in (("live", False, 1024), ("cached", True, 1024), ("live, micro 512", False, 512)):
        out = work / "jobs" / name.replace(", ", "-").replace(" ", "")
        args = train_args(STAGE2_DEFAULTS, output=str(out), seed=42, max_steps=a.jobs, batch_size=a.batch_size,
                          max_batch_tokens=tokens)
        m = task_distill(train, dev, teacher=teacher_path, args=args, init=a.init, shape=shape, distill=distill,
                         max_length=a.max_length, cache_dir=str(work), teacher_cache=cached)
        rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if x.strip()]
        runs[name] = (m, [r["loss"] for r in rows if "loss" in r])
    live = runs["live"][1]
    print(f"  stage-2 job, {a.jobs} steps (losses logged at {len(live)} steps):")
    for name, (m, losses) in runs.items():
        diffs = [rel(x, y) for x, y in zip(live, losses)]
        print(f"    {name:16s} fit {m['seconds']:7.1f} s; rel. loss diff to live: first step {diffs[0]:.1e}, "
              f"largest {max(diffs):.1e}")


if __name__ == "__main__":
    main()
