"""The CUDA path: skipped, saying so, where CUDA is absent (all but the first test, which checks
on the CPU that the losses take a teacher's outputs made under ``torch.inference_mode``, as the
teacher runs on CUDA). Run on a GPU by benchmarks/gpu_session.sh."""

from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import SHARED, run_cli, small_student

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (these tests run on a GPU)")


def real_sentences(data_dir, tokenizer, n=64):
    texts = [ln.split("\t", 1)[-1] for ln in (data_dir / "sst2" / "dev.txt").read_text().splitlines()[:n]]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_losses_take_inference_mode_teacher_outputs(tokenizer, data_dir):
    """Stage 1's and stage 2's losses backpropagate from teacher outputs made in inference mode."""
    from spikebert.distill.config import LayerMap, LossWeights
    from spikebert.distill.losses import Distiller, FeatureAligner

    ids, mask = real_sentences(data_dir, tokenizer, 4)
    ids = ids % 200
    student = small_student(num_labels=2, teacher_hidden_size=16)
    lmap = LayerMap.uniform(2, 2)
    with torch.inference_mode():
        hidden = tuple(torch.randn(*ids.shape, 16) for _ in range(3))
        logits = torch.randn(len(ids), 2)
    loss, _ = FeatureAligner(student, lmap)(ids, mask, hidden)
    loss.backward()
    loss, terms = Distiller(student, LossWeights(), lmap)(ids, mask, torch.tensor([0, 1, 0, 1]), logits, hidden)
    loss.backward()
    assert {"ce", "kl", "rep"} <= set(terms) and all(p.grad is not None for p in student.classifier.parameters())


@cuda
def test_fp32_cuda_logits_equal_the_cpu(tokenizer, data_dir):
    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model = SpikeBertForSequenceClassification(SpikeBertConfig(num_labels=2)).eval()
    ids, mask = real_sentences(data_dir, tokenizer)
    with torch.no_grad():
        cpu = model(ids, mask).logits
        gpu = model.cuda()(ids.cuda(), mask.cuda()).logits.cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4, rtol=0), (cpu - gpu).abs().max()


@cuda
def test_compiled_and_eager_neurons_give_identical_spikes(monkeypatch):
    from spikebert.neurons.lif import LIF

    torch.manual_seed(0)
    x = (torch.randn(4, 8, 32, 384, device="cuda") * 2).requires_grad_()
    out = {}
    for backend in ("eager", "compile"):
        monkeypatch.setenv("SPIKEBERT_NEURON_BACKEND", backend)
        spikes = LIF()(x)
        (grad,) = torch.autograd.grad((spikes * torch.linspace(-1, 1, 384, device="cuda")).sum(), x)
        out[backend] = spikes, grad
    assert torch.equal(out["eager"][0], out["compile"][0])
    assert torch.allclose(out["eager"][1], out["compile"][1], atol=1e-6)


@cuda
def test_blocks_replayed_as_cuda_graphs_compute_what_eager_blocks_compute(tokenizer, data_dir):
    """gpu_bench's ``graphs`` variant (every block compiled in reduce-overhead mode, CUDA graphs):
    three training steps on real sentences, the later ones replayed, give the eager student's loss
    and gradients every time."""
    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
    from spikebert.training.device import compile_blocks

    torch.backends.cuda.matmul.allow_tf32 = False
    ids, mask = (t.cuda() for t in real_sentences(data_dir, tokenizer, n=16))
    labels = torch.arange(16, device="cuda") % 2
    torch.manual_seed(0)
    model = SpikeBertForSequenceClassification(SpikeBertConfig(num_labels=2, num_hidden_layers=2)).cuda()
    loss = model(ids, mask, labels=labels).loss
    loss.backward()
    eager = loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    compile_blocks(model, mode="reduce-overhead")
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        torch.compiler.cudagraph_mark_step_begin()
        loss = model(ids, mask, labels=labels).loss
        loss.backward()
        assert abs(loss.item() - eager[0]) < 1e-5
        for name, grad in eager[1].items():
            assert torch.allclose(grad, dict(model.named_parameters())[name].grad, atol=1e-5), name


@cuda
def test_bf16_spikes_agree_with_fp32_on_real_sentences(tokenizer, data_dir):
    """bf16 autocast changes the currents a little, so a neuron near its threshold may flip: on
    real SST-2 sentences at least 99 % of the neuron outputs (real tokens, every group) agree."""
    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification

    torch.manual_seed(0)
    model = SpikeBertForSequenceClassification(SpikeBertConfig(num_labels=2)).cuda().eval()
    ids, mask = (t.cuda() for t in real_sentences(data_dir, tokenizer))
    runs = {}
    for precision in ("fp32", "bf16"):
        spikes = {}
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"), \
                model.listen(lambda name, s, m: spikes.__setitem__(name, s.float())):
            model(ids, mask)
        runs[precision] = spikes
    real = mask.bool()[None, :, :, None]
    same = total = 0
    for name, s in runs["fp32"].items():
        agree = (s == runs["bf16"][name]) & real
        same += agree.sum().item()
        total += (real.expand_as(s)).sum().item()
    assert same / total >= 0.99, f"{same / total:.4f} of the neuron outputs agree"


@cuda
def test_run_tiny_on_cuda(mini_sst2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEBERT_CORPORA", os.environ.get("SPIKEBERT_CORPORA", str(SHARED / "corpora")))
    work = tmp_path / "runs"
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--no-html"]) == 0
    report = json.loads((work / "sst2" / "report.json").read_text())
    assert set(report["stages"]) == {"teacher", "stage1", "stage2"}
    assert 0 <= report["snn_dev_accuracy"] <= 1
