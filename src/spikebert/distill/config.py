"""The one configuration path: the student's shape and the distillation, as data.

- :class:`StudentShape` (depth, width, heads, time_steps, tau, threshold, positions,
  input_encoding, neuron, spike_levels) is the one vocabulary of the student's shape: the
  command-line flags (``--depth`` ... ``--input-encoding``, ``--neuron``, ``--spike-levels``), the
  presets of ``spikebert run``, the run's folder tag and the model
  (:meth:`StudentShape.config_kwargs` gives the ``SpikeBertConfig`` fields).
- :class:`LossWeights`, :class:`LayerMap` and :class:`AugmentConfig`, gathered in
  :class:`DistillConfig`, say what distillation learns (after TextBrewer's ``DistillationConfig``
  and ``IntermediateMatch``: losses and layer matches as data); a stage writes its config whole
  into its ``metrics.json``.
- :func:`train_args`: a job's ``TrainArgs``, the values given over the job's defaults.

Every default is defined here once; the command line's option defaults are read from these
classes, never written out again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

from spikebert.errors import SpikeBertError

# stage 2 reads the teacher's outputs from an on-disk cache (spikebert.distill.teacher_cache), computed
# once per teacher and data: the loss at given weights equals the live teacher's to 1e-7 relative, and
# a step saves the teacher's forward pass (6 % of a step from the MiniLM, 34 % from the MPNet: measured
# by benchmarks/teacher_cache.py)
TEACHER_CACHE = True
TEACHER_CACHE_DTYPE = "float32"  # of the cached hidden states ("float16": half the disk, not exact)
# of the cached teacher attention maps (spikebert.distill.attention_cache; --w-attn > 0 only): float16
# halves 2.6 GB for SST-2 and changes the attention loss by at most 5e-6 relative (MiniLM, SST-2 dev
# batches; tests/test_teacher_transfer.py checks < 1e-5)
ATTN_CACHE_DTYPE = "float16"


def _shape_field(config_name: str, tag: str, from_teacher: bool = False):
    """A shape field: ``None`` by default (the teacher's value for depth, width and heads; the
    model's default for the rest). ``config_name``: its SpikeBertConfig field; ``tag``: its
    short name in a run's folder tag."""
    return field(default=None, metadata={"config": config_name, "tag": tag, "from_teacher": from_teacher})


def _tag_part(tag: str, value) -> str:
    if isinstance(value, bool):
        return f"-{tag}" if value else f"-no{tag}"
    return f"-{tag}{value:g}" if isinstance(value, float) else f"-{tag}{value}"


@dataclass(frozen=True)
class StudentShape:
    """The student's shape in one vocabulary; ``None`` leaves a field to the teacher (depth,
    width, heads) or to the model's default (the rest), unless a preset sets it.

    Args:
        depth: spiking blocks (``num_hidden_layers``).
        width: hidden width (``hidden_size``).
        heads: attention heads (``num_attention_heads``).
        time_steps: time steps T (owns no weights).
        tau: LIF membrane time constant (owns no weights).
        threshold: LIF firing threshold (owns no weights).
        positions: learned position embeddings (``position_embeddings``).
        input_encoding: ``"real"`` (the embedding enters the blocks), ``"spike"`` (its
            Heaviside, with a surrogate gradient) or ``"neuron"`` (its LayerNorm driving a
            neuron group over T); :mod:`spikebert.neurons.encoding`.
        neuron: the spiking neuron by registry name (``"lif"``, ``"if"``, ``"int"``,
            ``"bispike"``; :mod:`spikebert.neurons`). Owns a tensor only for ``bispike`` (its
            amplitudes): stage 2 may switch to any neuron but away from ``bispike``.
        spike_levels: the most spikes an ``int`` neuron emits in a step (D >= 1; 4 when the
            ``int`` neuron is given without it); only for a neuron with levels. In the folder tag
            it follows the neuron's name: ``-int4``.
    """

    depth: int | None = _shape_field("num_hidden_layers", "L", from_teacher=True)
    width: int | None = _shape_field("hidden_size", "W", from_teacher=True)
    heads: int | None = _shape_field("num_attention_heads", "H", from_teacher=True)
    time_steps: int | None = _shape_field("time_steps", "T")
    tau: float | None = _shape_field("tau", "tau")
    threshold: float | None = _shape_field("threshold", "th")
    positions: bool | None = _shape_field("position_embeddings", "pos")
    input_encoding: str | None = _shape_field("input_encoding", "")
    neuron: str | None = _shape_field("neuron", "")
    spike_levels: int | None = _shape_field("spike_levels", "")  # tagged with the neuron: -int4

    # the fields that own no tensor: stage 2 may set them apart from its stage-1 student
    DYNAMICS = ("time_steps", "tau", "threshold")
    # the neuron's fields: stage 2 may switch them too, where the stage-1 weights fit (a bispike
    # neuron's amplitudes then start at 1.0; away from bispike they would be lost)
    NEURON = ("neuron", "spike_levels")

    def __post_init__(self):
        from spikebert.modeling_spikebert import INPUT_ENCODINGS, resolve_spike_levels
        from spikebert.neurons import NEURONS, has_levels

        if self.input_encoding is not None and self.input_encoding not in INPUT_ENCODINGS:
            raise SpikeBertError(f"--input-encoding must be one of {', '.join(INPUT_ENCODINGS)} "
                                 f"(got {self.input_encoding!r})")
        if self.neuron is not None and self.neuron not in NEURONS:
            raise SpikeBertError(f"--neuron must be one of {', '.join(NEURONS)} (got {self.neuron!r})")
        if self.spike_levels is not None and (int(self.spike_levels) != self.spike_levels or self.spike_levels < 1):
            raise SpikeBertError(f"--spike-levels must be a whole number >= 1 (got {self.spike_levels})")
        if self.neuron is not None:
            if self.spike_levels is not None and not has_levels(self.neuron):
                raise SpikeBertError(f"--spike-levels applies to a neuron with levels (int), not --neuron "
                                     f"{self.neuron}")
            # one shape, one name: --neuron int is --neuron int --spike-levels 4
            object.__setattr__(self, "spike_levels", resolve_spike_levels(self.neuron, self.spike_levels))

    @classmethod
    def of(cls, values: Mapping) -> "StudentShape":
        """The shape fields found in ``values`` (a command's flags; other keys are ignored)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    @classmethod
    def of_config(cls, config) -> "StudentShape":
        """The shape of a ``SpikeBertConfig`` (every field set)."""
        return cls(**{f.name: getattr(config, f.metadata["config"]) for f in fields(cls)})

    def given(self) -> dict:
        """``{field: value}`` of the fields that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def over(self, base: "StudentShape | None") -> "StudentShape":
        """This shape's set fields over ``base``'s (the flags over a preset)."""
        return StudentShape(**{**(base.given() if base else {}), **self.given()})

    def like_teacher(self, config) -> "StudentShape":
        """This shape with the fields it leaves to the teacher (depth, width, heads) set to those of
        ``config``, a teacher's ``transformers`` config: the student that teacher would shape. The
        heads stay open when they do not divide the width (:func:`~spikebert.distill.losses.
        student_config` then picks them, as it does for a given width)."""
        taken = {f.name: getattr(config, f.metadata["config"]) for f in fields(self)
                 if f.metadata["from_teacher"] and getattr(self, f.name) is None}
        shaped = StudentShape(**{**self.given(), **taken})
        if "heads" in taken and shaped.width % shaped.heads:
            shaped = replace(shaped, heads=None)
        return shaped

    def config_kwargs(self) -> dict:
        """The set fields as ``SpikeBertConfig`` keyword arguments (``num_hidden_layers``, ...)."""
        return {f.metadata["config"]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def tag(self, base: "StudentShape") -> str:
        """The folder tag of this shape over ``base`` (a preset's): ``-T8`` for T = 8 over a T = 4
        preset, ``-spike`` for spike input over real, ``""`` when nothing differs. A field the
        preset leaves to the model's default is compared with that default; fields come in the
        order above, so one shape always names one folder."""
        from spikebert.modeling_spikebert import SpikeBertConfig

        model_default = StudentShape.of_config(SpikeBertConfig())
        parts = []
        for f in fields(self):
            value, ref = getattr(self, f.name), getattr(base, f.name)
            if ref is None and not f.metadata["from_teacher"]:
                ref = getattr(model_default, f.name)
            if f.name == "neuron":  # the neuron and its levels in one part: -int4, -bispike
                value = self.neuron_name() if self.neuron or self.spike_levels else None
                ref = base.neuron_name()
            if f.name != "spike_levels" and value is not None and value != ref:
                parts.append(_tag_part(f.metadata["tag"], value))
        return "".join(parts)

    def neuron_name(self) -> str:
        """The neuron with its levels: ``int4``, ``bispike`` (the model's default, ``lif``, when no
        neuron is set)."""
        from spikebert.modeling_spikebert import SpikeBertConfig

        return f"{self.neuron or SpikeBertConfig().neuron}{self.spike_levels or ''}"


@dataclass(frozen=True)
class LossWeights:
    """The weight of each loss term, and the temperature of the KL term.

    Args:
        ce: cross-entropy with the hard labels.
        kl: τ²·KL(teacher ‖ student) of the logits at temperature τ.
        rep: feature MSE of the matched layers (:class:`LayerMap`).
        emb: MSE of the projected student word embeddings to the teacher's.
        temperature: τ of the KL term.
        spikes: the student's mean firing rate, a penalty for energy (0: off).
        energy: the student's estimated energy on the batch as a fraction of its teacher's, by the
            strict rule of :mod:`spikebert.analysis.energy` (each group's spikes weighted by the
            operations they drive), a penalty aimed where the energy goes (0: off).
        attn: attention distillation: the distance of the student's per-head attention maps to the
            teacher's in the matched layers (:func:`spikebert.distill.attention.attention_loss`; 0: off).
    """

    ce: float = 0.1
    kl: float = 1.0
    rep: float = 0.1
    emb: float = 0.1
    temperature: float = 1.0
    spikes: float = 0.0
    energy: float = 0.0
    attn: float = 0.0


# the fixed terms of the jobs that are not stage 2 (their firing-rate weight may still be set)
DIRECT = LossWeights(ce=1.0, kl=0.0, rep=0.0, emb=0.0)
STAGE1 = LossWeights(ce=0.0, kl=0.0, rep=1.0, emb=0.0)


@dataclass(frozen=True)
class LayerMap:
    """Which student block learns from which teacher layer: ``pairs`` of (student block, teacher
    layer), both 1-based (teacher layer 0 is its embedding output)."""

    pairs: tuple[tuple[int, int], ...]

    @classmethod
    def uniform(cls, student_depth: int, teacher_depth: int) -> "LayerMap":
        """Student block i learns from teacher layer round(i · teacher_depth / student_depth):
        each block to its own layer when depths agree, evenly spaced layers when they don't."""
        return cls(tuple((i, max(1, round(i * teacher_depth / student_depth))) for i in range(1, student_depth + 1)))

    @classmethod
    def parse(cls, spec: str | None, student_depth: int, teacher_depth: int) -> "LayerMap":
        """``None`` or ``"uniform"``, or ``"1:2,2:4,3:6"``."""
        if spec in (None, "", "uniform"):
            return cls.uniform(student_depth, teacher_depth)
        try:
            pairs = tuple(tuple(int(x) for x in item.split(":")) for item in spec.split(","))
        except ValueError:
            raise SpikeBertError(f"--layer-map {spec!r}: expected pairs like 1:2,2:4") from None
        for s, t in pairs:
            if not (1 <= s <= student_depth and 0 <= t <= teacher_depth):
                raise SpikeBertError(f"--layer-map pair {s}:{t} is outside student blocks 1..{student_depth} "
                                     f"or teacher layers 0..{teacher_depth}")
        return cls(pairs)

    def as_string(self) -> str:
        return ",".join(f"{s}:{t}" for s, t in self.pairs)


@dataclass(frozen=True)
class AugmentConfig:
    """Data augmentation of stage 2's training set (see :mod:`spikebert.distill.augment`).

    Args:
        copies: augmented copies per sentence (0: none).
        p_mask: probability that a word becomes the mask token.
        p_replace: probability that a word becomes one of its nearest neighbours.
        p_ngram: probability that a copy is cut to a random n-gram.
        max_ngram: the longest such n-gram.
        neighbours: nearest neighbours (teacher input embeddings) a word is replaced from.
        seed: the augmented set is a pure function of the texts, the settings and this seed.
    """

    copies: int = 1
    p_mask: float = 0.1
    p_replace: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    neighbours: int = 8
    seed: int = 42


@dataclass(frozen=True)
class DistillConfig:
    """What a distillation stage learns from its teacher: the loss weights (and temperature), the
    layer map (``None``: uniform; or ``"1:2,2:4"``) and the augmentation of the training set
    (``None``: none), and whether a fresh student starts from the teacher's layer weights
    (``inherit``, :mod:`spikebert.distill.inherit`). Written whole into each stage's
    ``metrics.json`` (key ``distillation``) by :meth:`record`."""

    weights: LossWeights = LossWeights()
    layer_map: str | None = None
    augment: AugmentConfig | None = AugmentConfig()
    inherit: bool = False

    def record(self, layer_map: LayerMap | None = None) -> dict:
        """The config as ``metrics.json`` keeps it, with the layer map as resolved for the run."""
        out = asdict(self)
        if layer_map is not None:
            out["layer_map"] = layer_map.as_string()
        return out


def check_lr(lr: float | None, flag: str = "--lr") -> None:
    """A learning rate given by the user is a number above 0 (None: the job's default)."""
    if lr is not None and not lr > 0:
        raise SpikeBertError(f"{flag} must be above 0 (got {lr:g})")


def train_args(defaults: dict, *, output: str, **given):
    """A job's ``TrainArgs``: its ``defaults`` (e.g. ``STAGE2_DEFAULTS``), then every value given
    that is not None. ``max_steps`` given without ``epochs`` bounds the run by steps alone (as in
    ``transformers``)."""
    from spikebert.training.trainer import TrainArgs

    check_lr(given.get("lr"))
    chosen = {k: v for k, v in given.items() if v is not None}
    merged = {**defaults, **chosen, "output": output}
    if "max_steps" in chosen and "epochs" not in chosen:
        merged["epochs"] = None
    return TrainArgs(**merged)
