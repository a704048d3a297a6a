"""Draw the README figure of the embedded synthetic Market-1501 set.

Generates a small set into a temporary folder and writes a grid of identities (rows) seen by
several cameras (columns), each row labelled with its attributes:

    python experiments/make_sample_grid.py [--out experiments/figures/synthetic_samples.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from attrnet.synthetic import generate_synthetic_market, save_sample_grid

DEFAULT_OUT = Path(__file__).resolve().parent / "figures" / "synthetic_samples.png"


def main(argv: list[str] | None = None) -> Path:
    """Generate the set, write the grid PNG and return its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--rows", type=int, default=8, help="identities shown")
    parser.add_argument("--columns", type=int, default=6, help="images per identity")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = generate_synthetic_market(
            Path(folder) / "market", seed=args.seed, num_train_ids=80, num_test_ids=2,
            num_junk=0, num_distractors=0,
        )
        save_sample_grid(root, args.out, n=args.rows, per_id=args.columns)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
