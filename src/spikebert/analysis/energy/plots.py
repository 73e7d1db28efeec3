"""The figures of an energy report: firing rates (mean level, and the non-zero share where
spikes carry more than one bit) per neuron group, and energy per layer under both conventions."""

from __future__ import annotations

import numpy as np


def neuron_label(r: dict) -> str:
    """The neuron of a report as the figures name it: ``lif``, ``int (D = 4)``, ``bispike``."""
    neuron, levels = r.get("neuron", "lif"), r.get("spike_levels")
    return f"{neuron} (D = {levels})" if levels else neuron


def multibit(r: dict) -> bool:
    """Whether a report's spikes carry more than one bit (its mean level and non-zero share differ
    in kind): then the figures show both."""
    return bool(r.get("spike_levels")) or r.get("neuron") == "bispike"


def _plot_rates(r: dict, path) -> None:
    """Each group's firing rate (mean spike level per neuron and step) as a bar; where spikes carry
    more than one bit, its share of non-zero outputs as a black tick on the bar."""
    import matplotlib.pyplot as plt

    rows = list(r["firing_rates"])
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) + 2), 4.5))
    w = 0.8 / max(len(r["firing_rates"][row]) for row in rows)
    colors: dict[str, str] = {}  # one colour a group, labelled once
    for i, row in enumerate(rows):  # each row's groups centred on it
        rates = r["firing_rates"][row]
        for k, (g, rate) in enumerate(rates.items()):
            new = g not in colors
            colors.setdefault(g, f"C{len(colors) % 10}")
            at = x[i] + (k - (len(rates) - 1) / 2) * w
            ax.bar(at, rate, w, color=colors[g], label=g if new else None)
            name = g if row == g else f"{row}.{g}"
            if multibit(r) and name in r.get("group_nonzero_shares", {}):
                ax.hlines(r["group_nonzero_shares"][name], at - w / 2, at + w / 2, color="black",
                          label="non-zero share" if i == k == 0 else None)
    ax.set_xticks(x, rows)
    ax.set_ylabel("mean |spike level| per neuron and step" if multibit(r)
                  else "firing rate (spikes per neuron and step)")
    ax.set_title(f"Firing rates over {r['n']} sentences (T = {r['time_steps']}, {r['input_encoding']} input, "
                 f"{neuron_label(r)} neuron)")
    ax.legend(ncol=len(colors), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_energy(r: dict, path) -> None:
    """Per layer: the strict and the paper's SNN counts (MACs and ACs stacked) beside the ANN's;
    in total: both conventions, the ANN and their ratios, with BERT-base and the paper's figures."""
    import matplotlib.pyplot as plt

    rows, em, ea = r["layers"], r["e_mac_pj"] * 1e-9, r["e_ac_pj"] * 1e-9
    x = np.arange(len(rows))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(10, 1.3 * len(rows) + 6), 4.8),
                                  gridspec_kw={"width_ratios": [3, 1]})
    for k, (prefix, label, colors) in enumerate((("snn", "SNN strict", ("tab:orange", "gold")),
                                                 ("paper", "SNN paper's", ("tab:green", "yellowgreen")))):
        macs = [row.get(f"{prefix}_macs", 0) * em for row in rows]
        ax.bar(x - 0.27 + 0.27 * k, macs, 0.27, label=f"{label}, MACs", color=colors[0])
        ax.bar(x - 0.27 + 0.27 * k, [row.get(f"{prefix}_acs", 0) * ea for row in rows], 0.27, bottom=macs,
               label=f"{label}, ACs", color=colors[1])
    ax.bar(x + 0.27, [row.get("ann_energy_mj", 0) for row in rows], 0.27, label="ANN", color="tab:blue")
    ax.set_xticks(x, [row["layer"] for row in rows])
    ax.set_ylabel("energy per sentence (mJ)")
    ax.legend(fontsize=8)
    c = r["conventions"]
    ax2.bar(["strict", "paper's", "ANN"], [c["strict"]["energy_mj"], c["paper"]["energy_mj"], r["ann_energy_mj"]],
            color=["tab:orange", "tab:green", "tab:blue"])
    ax2.set_title(f"SNN / ANN: strict {c['strict']['energy_ratio']:.1%} (headline),\n"
                  f"paper's convention {c['paper']['energy_ratio']:.1%}", fontsize=9)
    fig.suptitle(f"Estimated energy (E_MAC {r['e_mac_pj']} pJ, E_AC {r['e_ac_pj']} pJ), {r['input_encoding']} input, "
                 f"{r['n']} sentences, {r['tokens_per_sentence']:.1f} tokens on average")
    p = r["paper_figures"]
    notes = [f"Against BERT-base (12 × 768) on these texts: strict {c['strict']['bert_base_ratio']:.2%}, paper's "
             f"{c['paper']['bert_base_ratio']:.2%}; the paper: {p['snn_energy_mj']:.2f} vs {p['ann_energy_mj']:.2f} mJ "
             f"= {p['energy_ratio']:.1%}."]
    if "timing" in r:
        t = r["timing"]
        notes.append(f"CPU: SNN {t['snn_ms_per_sentence']:.1f} ms, ANN {t['ann_ms_per_sentence']:.1f} ms per "
                     "sentence. A CPU is not neuromorphic hardware: it runs spikes as dense matmuls.")
    fig.text(0.01, 0.01, "\n".join(notes), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_plots(r: dict, output) -> list[str]:
    """``firing_rates.png`` (per neuron group) and ``energy.png`` (both conventions against the
    ANN) in ``output``."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _plot_rates(r, out / "firing_rates.png")
    _plot_energy(r, out / "energy.png")
    return [str(out / "firing_rates.png"), str(out / "energy.png")]
