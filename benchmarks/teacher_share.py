"""What share of a stage-2 step the teacher's forward pass takes (not a test: it prints figures).

Stage 2 runs the fine-tuned teacher (logits and hidden states) on every batch of every epoch. Caching
its outputs would save that share of each step after the first epoch, at the price of storing
(layers + 1) x tokens x width floats per text. This times, on real task batches as the trainer
builds them (length buckets, dynamic padding, micro-batches of at most 1024 token slots):
the teacher's no-grad forward alone, and the whole stage-2 step (teacher + student forward,
backward, AdamW).

    python benchmarks/teacher_share.py --task sst2 --teacher runs/sst2/teacher --init runs/stage1-...
"""

from __future__ import annotations

import argparse
import time


def build(a):
    """The teacher, its tokenizer, the stage-2 module (student and embedding projection) and the
    task's training split, as ``distill task`` makes them."""
    from spikebert.data.tasks import label_fields, load_data
    from spikebert.distill.config import LayerMap, LossWeights
    from spikebert.distill.losses import Distiller, embeddings_from_teacher, student_config, teacher_word_embeddings
    from spikebert.distill.stages import load_student_init
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification
    from spikebert.teachers.loading import load_teacher

    train = load_data(a.task, "train", a.data_dir)
    teacher, tokenizer = load_teacher(a.teacher, head="classifier", labels=train.labels)
    teacher.requires_grad_(False).eval()
    t_emb = teacher_word_embeddings(teacher)
    if a.init:
        student = load_student_init(a.init, train.labels)
    else:
        student = SpikeBertForSequenceClassification(student_config(teacher.config, **label_fields(train.labels)))
        embeddings_from_teacher(student, teacher)  # as stage 2 does for a fresh student
    lmap = LayerMap.parse(None, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    return teacher, tokenizer, Distiller(student, LossWeights(), lmap, t_emb).train(), train


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--teacher", required=True, help="a fine-tuned teacher folder")
    ap.add_argument("--init", default=None, help="a stage-1 student folder (default: a fresh teacher-shaped student)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()

    import torch

    from spikebert.data.batching import encode_examples, make_loader
    from spikebert.training.trainer import micro_batches

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    teacher, tokenizer, distiller, train = build(a)
    opt = torch.optim.AdamW(distiller.parameters(), lr=1e-4)
    loader = make_loader(encode_examples(tokenizer, train.examples, 128), a.batch_size, shuffle=True, seed=0)

    t_teacher = t_step = 0.0
    tokens = 0
    for i, batch in enumerate(loader):
        if i > a.steps:
            break
        parts = micro_batches(batch, 1024)
        t0 = time.perf_counter()
        tt = 0.0
        for part in parts:
            t1 = time.perf_counter()
            with torch.no_grad():
                t = teacher(input_ids=part["input_ids"], attention_mask=part["attention_mask"], output_hidden_states=True)
            tt += time.perf_counter() - t1
            loss, _ = distiller(part["input_ids"], part["attention_mask"], part["labels"], t.logits, t.hidden_states)
            (loss * part["input_ids"].shape[0] / batch["input_ids"].shape[0]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i == 0:
            continue  # warm-up
        t_step += time.perf_counter() - t0
        t_teacher += tt
        tokens += int(batch["attention_mask"].sum())
    n = a.steps
    print(f"{a.task}: {n} steps of batch {a.batch_size}, {tokens / n:.0f} real tokens a batch, "
          f"{torch.get_num_threads()} threads")
    print(f"  whole stage-2 step  {t_step / n * 1000:8.1f} ms")
    print(f"  teacher forward     {t_teacher / n * 1000:8.1f} ms  ({100 * t_teacher / t_step:.1f}% of the step)")
    print(f"  => caching the teacher's outputs would save at most {100 * t_teacher / t_step:.1f}% of every epoch after the first")


if __name__ == "__main__":
    main()
