"""PNG chart of the 0-1 metrics per question kind (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RATE_METRICS = (
    ("recall_at_10", "recall@10"), ("mrr", "MRR@10"), ("ndcg_at_10", "nDCG@10"),
    ("cited_precision", "cited P"), ("cited_recall", "cited R"), ("support_rate", "support\n(proxy)"),
    ("fact_coverage", "facts"), ("refusal_rate", "refusal"), ("false_refusal_rate", "false\nrefusal"),
)  # fmt: skip


def plot_by_kind(by_kind: dict[str, dict[str, Any]], path: Path, title: str = "litassist eval") -> None:
    """Grouped bars: one group per metric, one bar per kind (a metric that does not apply is left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(by_kind)
    metrics = [(key, label) for key, label in RATE_METRICS if any(by_kind[k].get(key) is not None for k in kinds)]
    width = 0.8 / max(len(kinds), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(metrics) + 2), 4.8), dpi=110)
    try:
        for i, kind in enumerate(kinds):
            xs, ys = [], []
            for j, (key, _) in enumerate(metrics):
                value = by_kind[kind].get(key)
                if value is not None:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    ys.append(float(value))
            bars = ax.bar(xs, ys, width=width, label=f"{kind} (n={by_kind[kind].get('n_questions', '?')})")
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.set_xticks(range(len(metrics)), [label for _, label in metrics], fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("score (0-1)")
        ax.set_title(f"{title}: metrics per question kind")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", ncols=min(len(kinds), 4))
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
