"""Command line: ``python -m mnist_pipeline predict|plots|ci`` (also ``mnist-pipeline``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_pipeline.core.entry import run


def _predict(args: argparse.Namespace) -> int:
    from mnist_pipeline.tools.predict import predict, predict_onnx

    if args.onnx is not None:
        results = predict_onnx(args.images, args.onnx, model_name=args.model)
    else:
        checkpoint = args.checkpoint or Path("models") / f"{args.model or 'lenet5'}.pt"
        results = predict(args.images, checkpoint, model_name=args.model)
    for result in results:
        sys.stdout.write(f"{result.path}: {result.digit} ({result.probability:.1%})\n")
    return 0


def _plots(args: argparse.Namespace) -> int:
    from mnist_pipeline.tools.plots import show_plots

    for path in show_plots(Path.cwd(), args.images):
        sys.stdout.write(f"{path}\n")
    return 0


def _plots_template(args: argparse.Namespace) -> int:
    from mnist_pipeline.tools.plots import write_template

    write_template(args.path)
    return 0


def _ci(args: argparse.Namespace) -> int:
    from mnist_pipeline.ci.run import run_ci

    return 0 if run_ci(Path.cwd(), base=args.base) else 1


def parser() -> argparse.ArgumentParser:
    from mnist_pipeline.tools.plots import DEFAULT_IMAGES, DEFAULT_TEMPLATE

    top = argparse.ArgumentParser(prog="mnist-pipeline", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="print the digit in each image and its probability"
    )
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument(
        "--model",
        help="use models/<model>.pt (default lenet5); with --checkpoint or --onnx, check it",
    )
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="a checkpoint file to use instead")
    source.add_argument(
        "--onnx",
        type=Path,
        metavar="FILE",
        help="an exported ONNX file (models/<model>.onnx), run by onnxruntime without torch",
    )
    predict.set_defaults(run=_predict)

    plots = commands.add_parser(
        "plots", help="dvc plots show (offline page), then every plot as a PNG"
    )
    plots.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    plots.set_defaults(run=_plots)

    template = commands.add_parser(
        "plots-template", help="write the DVC page template with vega, vega-lite, vega-embed"
    )
    template.add_argument("path", type=Path, nargs="?", default=DEFAULT_TEMPLATE)
    template.set_defaults(run=_plots_template)

    ci = commands.add_parser(
        "ci", help="reproduce, check accuracy floors and write the report (make ci)"
    )
    ci.add_argument(
        "--base",
        help="revision to compare with (default: the pull request's base branch, else main)",
    )
    ci.set_defaults(run=_ci)
    return top


def main(argv: list[str] | None = None) -> int:
    def command(args: list[str]) -> int:
        parsed = parser().parse_args(args)
        return parsed.run(parsed)

    return run(command, argv)


if __name__ == "__main__":
    sys.exit(main())
