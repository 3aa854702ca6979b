"""`python -m models.evaluation` (`make eval`): the offline quality report of every stage.

Evaluates the eval artifacts (built first if missing) on the test split and writes
`benchmarks/results/quality.json` and `quality.png`. Errors print `error: ...` on stderr
and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    """Parses arguments, evaluates, writes the report; returns the exit code."""
    from movierec.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m models.evaluation", description=__doc__)
    parser.add_argument("--variant", default=settings.dataset)
    parser.add_argument("--artifacts-dir", type=Path, default=settings.artifacts_dir)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--no-build", action="store_true", help="fail instead of building missing artifacts"
    )
    parser.add_argument(
        "--ranking-dir", type=Path, default=None, help="evaluate this ranker instead"
    )
    parser.add_argument(
        "--no-temporal", action="store_true", help="skip the temporal leave-last-out protocol"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("feast", "absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.k < 1:
        print("error: --k must be >= 1", file=sys.stderr)
        return 2
    try:
        from models.evaluation.report import EvalOptions, evaluate, write_report

        options = EvalOptions(
            variant=args.variant,
            artifacts_dir=args.artifacts_dir,
            out_dir=args.out_dir,
            k=args.k,
            build_missing=not args.no_build,
            ranking_dir=args.ranking_dir,
            temporal=not args.no_temporal,
        )
        report = evaluate(options)
        json_path, png_path = write_report(report, options.out_dir)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # every failure is reported the same way, without a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    k = args.k
    header = [f"nDCG@{k}", f"P@{k}", f"R@{k}", f"MAP@{k}"]
    print(f"{'system':<12} {header[0]:>9} {header[1]:>7} {header[2]:>7} {header[3]:>8}")
    for name, values in report["systems"].items():
        print(
            f"{name:<12} {values[f'ndcg@{k}']:9.4f} {values[f'precision@{k}']:7.4f} "
            f"{values[f'recall@{k}']:7.4f} {values[f'map@{k}']:8.4f}"
        )
    recall_key = next(key for key in report if key.startswith("candidate_recall@"))
    print(f"{recall_key}: {report[recall_key]:.4f}")
    gains = report["ablation"].get(f"gain_ndcg@{k}", {})
    print(
        "ablation (nDCG gain of each source): "
        + ", ".join(f"{s} {g:+.4f}" for s, g in gains.items())
    )
    if "temporal" in report:
        systems = report["temporal"]["systems"]
        print(
            "temporal leave-last-out nDCG: "
            + ", ".join(f"{name} {values[f'ndcg@{k}']:.4f}" for name, values in systems.items())
        )
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
