"""Seeded synthetic CSV data with a built-in disparity: the warm-up's input, and the tests' and bench's."""

from __future__ import annotations


def biased_csv(n_rows: int, n_columns: int = 10, seed: int = 42) -> str:
    """``n_columns`` columns: numeric features f0.., a ``region`` category, ``group`` and ``approved``.

    Group "a" gets a head start in f0, which drives approval, so a model reproduces a disparity.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n_numeric = n_columns - 3
    group = rng.choice(["a", "b", "c"], size=n_rows, p=[0.5, 0.3, 0.2])
    numeric = rng.normal(size=(n_rows, n_numeric))
    numeric[:, 0] += np.where(group == "a", 0.6, 0.0)
    region = rng.choice(["north", "south", "east", "west"], size=n_rows)
    approved = (numeric[:, 0] + 0.5 * numeric[:, 1] + rng.normal(scale=0.8, size=n_rows) > 0.3).astype(int)
    header = [f"f{i}" for i in range(n_numeric)] + ["region", "group", "approved"]
    lines = [",".join(header)]
    for i in range(n_rows):
        values = [f"{v:.4f}" for v in numeric[i]] + [region[i], group[i], str(approved[i])]
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"
