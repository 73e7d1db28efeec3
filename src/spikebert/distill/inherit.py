"""Weight inheritance (``--init-from-teacher``): a fresh student starts from its teacher's layers.

Before stage 1 (or a stage 2 with no ``--init``), every student block takes the weights of the
teacher layer the layer map gives it (:class:`~spikebert.distill.config.LayerMap`, uniform when the
depths differ; the same map the feature loss uses), as :data:`LAYOUTS` says, plus the word (and
position) embeddings as a fresh student always does:

==========================  =================================  ===============================
student block               BERT, RoBERTa layer                MPNet layer
==========================  =================================  ===============================
attention.query.linear      attention.self.query               attention.attn.q
attention.key.linear        attention.self.key                 attention.attn.k
attention.value.linear      attention.self.value               attention.attn.v
attention.output.linear     attention.output.dense             attention.attn.o
attention.output.norm       attention.output.LayerNorm         attention.LayerNorm
mlp.fc1.linear              intermediate.dense                 intermediate.dense
mlp.fc2.linear              output.dense                       output.dense
mlp.fc2.norm                output.LayerNorm                   output.LayerNorm
==========================  =================================  ===============================

Weights and biases of each. The teacher has two LayerNorms a layer, each after a sub-layer's last
projection (on the residual sum); the student has one after every projection (before its neuron).
Each teacher LayerNorm goes to the student LayerNorm that follows the same projection: attention
output → ``attention.output.norm``, MLP output → ``mlp.fc2.norm``. The student's q, k, v and fc1
LayerNorms have no teacher counterpart and keep their initialisation (weight 1, bias 0).

The student takes the teacher's MLP width (``intermediate_size``) when it inherits. Widths or
head counts that differ are one error naming both shapes: a copied matrix must have the shape of
the one it replaces, and a head's slice of q and k must be the teacher's head.
"""

from __future__ import annotations

import torch

from spikebert.distill.config import LayerMap
from spikebert.errors import SpikeBertError

# student sub-module (in a block) -> teacher sub-module (in a layer), per encoder layout
_COMMON = {"mlp.fc1.linear": "intermediate.dense", "mlp.fc2.linear": "output.dense",
           "mlp.fc2.norm": "output.LayerNorm"}
LAYOUTS = {
    "bert": {"attention.query.linear": "attention.self.query", "attention.key.linear": "attention.self.key",
             "attention.value.linear": "attention.self.value", "attention.output.linear": "attention.output.dense",
             "attention.output.norm": "attention.output.LayerNorm", **_COMMON},
    "mpnet": {"attention.query.linear": "attention.attn.q", "attention.key.linear": "attention.attn.k",
              "attention.value.linear": "attention.attn.v", "attention.output.linear": "attention.attn.o",
              "attention.output.norm": "attention.LayerNorm", **_COMMON},
}  # RoBERTa's layers are BERT's


def _shape(config) -> str:
    return (f"{config.num_hidden_layers} x {config.hidden_size} with {config.num_attention_heads} heads")


def check_inheritable(student_config, teacher_config, teacher: str) -> None:
    """One clear error when the student cannot take the teacher's weights (another width or head
    count), naming both shapes."""
    s, t = student_config, teacher_config
    if (s.hidden_size, s.num_attention_heads) != (t.hidden_size, t.num_attention_heads):
        raise SpikeBertError(f"--init-from-teacher: the student is {_shape(s)}, the teacher {teacher} is "
                             f"{_shape(t)}; the weights copy only between equal widths and head counts "
                             f"(give --width {t.hidden_size} --heads {t.num_attention_heads}, or leave "
                             "--init-from-teacher out)")


def inherit_config(teacher_config) -> dict:
    """The ``SpikeBertConfig`` fields a student that inherits takes from its teacher."""
    return {"intermediate_size": teacher_config.intermediate_size}


def teacher_layers(teacher):
    """The teacher's encoder layers and their layout name (``bert`` or ``mpnet``); an encoder of
    another layout is one error."""
    base = getattr(teacher, teacher.base_model_prefix, teacher)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is not None and len(layers):
        for name, table in LAYOUTS.items():
            if all(_has(layers[0], path) for path in table.values()):
                return layers, name
    raise SpikeBertError(f"--init-from-teacher: a {teacher.config.model_type} teacher's layers are not laid out as "
                         f"BERT's, RoBERTa's or MPNet's; leave --init-from-teacher out")


def _has(module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


@torch.no_grad()
def inherit_from_teacher(student, teacher, layer_map: LayerMap, teacher_name: str = "the teacher") -> dict:
    """Copy the teacher's layer weights into ``student`` through ``layer_map`` (see the module
    docstring). Returns what was copied: ``{"layout", "pairs": "1:2,2:4", "tensors"}``; student
    blocks mapped to the teacher's embedding output (layer 0) keep their initialisation."""
    check_inheritable(student.config, teacher.config, teacher_name)
    layers, layout = teacher_layers(teacher)
    blocks, copied, pairs = student.spikebert.layers, 0, []
    for s, t in layer_map.pairs:
        if t < 1:
            continue
        for mine, theirs in LAYOUTS[layout].items():
            dst, src = blocks[s - 1].get_submodule(mine), layers[t - 1].get_submodule(theirs)
            for name in ("weight", "bias"):
                a, b = getattr(dst, name), getattr(src, name)
                if a.shape != b.shape:
                    raise SpikeBertError(f"--init-from-teacher: student {mine}.{name} is {tuple(a.shape)}, teacher "
                                         f"layer {t} {theirs}.{name} is {tuple(b.shape)}")
                a.copy_(b)
                copied += 1
        pairs.append(f"{s}:{t}")
    return {"layout": layout, "pairs": ",".join(pairs), "tensors": copied}
