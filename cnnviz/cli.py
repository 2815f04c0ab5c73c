"""The command line: ``python -m cnnviz presets|summary|sizes|graph|train|limits``.

Errors print one line on stderr and exit non-zero; never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnviz import limits
from cnnviz.errors import CnnvizError, Problem, ShapeError, SpecError, fmt_shape
from cnnviz.models import build_meta
from cnnviz.models.arithmetic import output_shape
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import SizeReport, advice, valid_sizes
from cnnviz.shapes.summary import Summary, parse_size, summarize
from cnnviz.specs import load_spec_file
# The train command's choices and help (the registry and the config import torch at most).
from cnnviz.training.config import DEVICE_CHOICES, RECIPES, book_defaults_text
from cnnviz.training.datasets import DATASETS, augmentation_text

MAX_SIZE_LIMIT = 100_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise SpecError([Problem("", f"{message} (see --help)")])


def load(name_or_path: str):
    """A preset by name, or a spec from a JSON config file (checked that it builds)."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path].spec
    path = Path(name_or_path)
    if path.exists() or name_or_path.endswith(".json"):
        try:
            spec = load_spec_file(path)
            build_meta(spec)
            return spec
        except SpecError as exc:
            raise SpecError([Problem(f"{path}", str(exc))]) from None
    raise SpecError([Problem("", f"{name_or_path!r} is neither a preset nor a config file; "
                                 f"presets: {', '.join(PRESETS)}")])


def _count(n: int) -> str:
    return f"{n:,}"


def cmd_presets(args) -> int:
    rows = []
    for p in PRESETS.values():
        params = sum(t.numel() for t in build_meta(p.spec).parameters())
        rows.append({"name": p.name, "family": p.spec.family, "in_channels": p.spec.in_channels,
                     "num_classes": p.spec.num_classes, "input_size": p.spec.input_size,
                     "params": params, "description": p.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'preset':22} {'family':10} {'input':>11} {'classes':>7} {'params':>12}  description")
    for r in rows:
        size = f"{r['in_channels']}×{r['input_size']}×{r['input_size']}"
        print(f"{r['name']:22} {r['family']:10} {size:>11} {r['num_classes']:>7} "
              f"{_count(r['params']):>12}  {r['description']}")
    return 0


def _print_summary(s: Summary) -> None:
    name_w = max(len("  " * (r.depth - 1) + f"{r.type} {r.name}") for r in s.rows) + 2
    print(f"{'Layer':{name_w}}{'Output shape':>18}{'Param #':>13}{'Mult-adds':>15}"
          f"{'Kernel':>8}  Arithmetic")
    print("=" * (name_w + 72))
    for r in s.rows:
        label = "  " * (r.depth - 1) + f"{r.type} {r.name}"
        shape = "×".join(str(d) for d in (1, *r.output_shape))
        kernel = f"{r.kernel[0]}×{r.kernel[1]}" if r.kernel else ""
        params = _count(r.params) if r.params else "--"
        madds = _count(r.mult_adds) if r.mult_adds else "--"
        print(f"{label:{name_w}}{shape:>18}{params:>13}{madds:>15}{kernel:>8}  {r.arithmetic}")
    print("=" * (name_w + 72))
    mb = 1e6
    print(f"Total params: {_count(s.total_params)}   Total mult-adds: {_count(s.mult_adds)}")
    print(f"Input size (MB): {s.input_bytes / mb:.2f}   Forward/backward pass size (MB): "
          f"{s.forward_backward_bytes / mb:.2f}   Params size (MB): {s.param_bytes / mb:.2f}   "
          f"Estimated total (MB): {s.total_bytes / mb:.2f}")
    for w in s.warnings:
        print(f"Note: {w}")


def cmd_summary(args) -> int:
    spec = load(args.network)
    size = parse_size(args.size) if args.size is not None else (spec.input_size,) * 2
    try:
        s = summarize(spec, size)
    except ShapeError as exc:
        hint = ""
        report = valid_sizes(spec, 1024)
        if report.valid:
            ranges = ", ".join(f"{lo}–{hi}" if lo != hi else f"{lo}" for lo, hi in report.valid)
            hint = f" (square sizes that run: {ranges})"
        raise CnnvizError(f"{args.network} does not run at {size[0]}×{size[1]}: {exc}{hint}") \
            from None
    if args.json:
        print(json.dumps(s.to_json()))
    else:
        _print_summary(s)
    return 0


def _print_sizes(name: str, family: str, r: SizeReport) -> None:
    print(f"{name}: square input sizes 1..{r.checked_up_to} that run")
    if not r.valid:
        print("  none")
    for lo, hi in r.valid:
        print(f"  {lo}–{hi}" if lo != hi else f"  {lo}")
    if r.valid:
        if r.swept:
            maximum = f"unknown ({r.why_no_max})"
        elif r.max is None:
            maximum = "none (any larger size runs)"
        elif r.max > r.checked_up_to:
            maximum = f"{r.max} (beyond the checked range)"
        else:
            maximum = str(r.max)
        print(f"minimum: {r.min}   maximum: {maximum}")
    if r.below_min:
        print(f"below: {r.below_min}")
    if r.above_max:
        print(f"above: {r.above_max}")
    b = r.batch_one
    if b.always:
        print(f"batch size 1 in training mode: fails at every size — {', '.join(b.always)} "
              "(BatchNorm1d) sees one value per feature")
    elif b.everywhere:
        print(f"batch size 1 in training mode: fails at every valid size up to "
              f"{b.below.size} — {b.below.layer_type} {b.below.layer} sees a 1×1 map")
    elif b.below is not None:
        print(f"batch size 1 in training mode: needs size ≥ {b.min_size}; at {b.below}")
    for tip in advice(r, family):
        print(f"tip: {tip}")


def cmd_sizes(args) -> int:
    if not 1 <= args.max <= MAX_SIZE_LIMIT:
        raise SpecError([Problem("--max", f"must be between 1 and {MAX_SIZE_LIMIT:,}, "
                                          f"got {args.max}")])
    spec = load(args.network)
    report = valid_sizes(spec, args.max)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        _print_sizes(args.network, spec.family, report)
    return 0


def _graph_json(network: str, depth: int, opened: list[str], graph) -> dict:
    """The ``graph --json`` object, field by field as docs/graph-json.md describes it."""
    def shape(s):
        return list(s) if s is not None else None
    return {"network": network, "depth": depth, "open": opened,
            "nodes": [{"key": n.key, "label": n.label, "kind": n.kind, "shape": shape(n.shape),
                       "depth": n.depth, "members": list(n.members)} for n in graph.nodes],
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind,
                       "shape": shape(e.shape)} for e in graph.edges],
            "counts": graph.counts}


def _print_graph(network: str, depth: int, graph) -> None:
    def dims(s) -> str:
        return "×".join(str(d) for d in s) if s is not None else "?"
    print(f"{network} at depth {depth}: {len(graph.nodes)} nodes, {len(graph.edges)} edges")
    key_w = max(len(n.key) for n in graph.nodes) + 2
    print("nodes")
    for n in graph.nodes:
        print(f"  {n.key:{key_w}}{n.kind:7}{dims(n.shape):>14}  {n.label}")
    print("edges")
    ends = [f"{e.source} → {e.target}" for e in graph.edges]
    end_w = max((len(t) for t in ends), default=0) + 2
    for e, text in zip(graph.edges, ends):
        print(f"  {text:{end_w}}{e.kind:11}{dims(e.shape):>14}")
    print("counts")
    print("  " + ", ".join(f"{k}: {v}" for k, v in graph.counts.items()))


def cmd_graph(args) -> int:
    # Imported here: torch.fx and the graph code are for this command alone.
    from cnnviz.graph.connections import connections, openable

    if args.depth < 1:
        raise SpecError([Problem("--depth", f"must be 1 or more, got {args.depth}")])
    spec = load(args.network)
    _runs(spec, args.network, spec.input_size)  # torch.fx traces a forward pass at this size
    groups = openable(spec)
    unknown = [p for p in args.open if p not in groups]
    if unknown:
        listed = ", ".join(groups) or "none"
        raise SpecError([Problem("--open", f"{unknown[0]!r} is not a stage or block of "
                                           f"{args.network}; groups: {listed}")])
    graph = connections(spec, frozenset(args.open), args.depth)
    if args.json:
        print(json.dumps(_graph_json(args.network, args.depth, args.open, graph)))
    else:
        _print_graph(args.network, args.depth, graph)
    return 0


def cmd_train(args) -> int:
    # Imported here: the shape commands need no data or training code.
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.engine import TrainingRun

    spec = load(args.network)
    # Checked before the network is: TrainConfig reads 0 as "not given" (the book's batch
    # size, the network's size), and the data's limit is checked only when the run starts.
    for option, value in (("--batch-size", args.batch_size), ("--size", args.size),
                          ("--limit", args.limit)):
        if value is not None and value < 1:
            raise SpecError([Problem(option, f"must be 1 or more, got {value}")])
    config = TrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, size=args.size, device=args.device, recipe=args.recipe,
                         time_budget=args.time_budget, augment=args.augment, limit=args.limit,
                         data_root=args.data_root)
    _trainable(spec, args.network, config.resolved(spec).size, args.dataset)
    run = TrainingRun(spec, config).start()
    shown = 0
    while True:
        finished = run.join(timeout=0.2)
        epochs = [p for p in run.points() if p.test_acc is not None]
        for point in epochs[shown:]:
            _print_epoch(point, args.json)
        shown = len(epochs)
        if finished:
            break
    if run.state == "failed":
        raise CnnvizError(run.message)
    final = {"final": True, "device": run.device, "state": run.state, "message": run.message,
             "test_acc": epochs[-1].test_acc if epochs else None,
             "seconds": round(run.points()[-1].seconds, 3) if run.points() else 0.0}
    print(json.dumps(final) if args.json else
          f"{run.state} on {run.device}: {run.message}; test accuracy "
          f"{_accuracy(final['test_acc'])}")
    return 0


def _runs(spec, network: str, size: int) -> tuple[int, ...]:
    """The network's output shape for one size×size image; one line naming the layer that
    cannot run at that size, as ``summary`` says it."""
    try:
        return output_shape(build_meta(spec), (spec.in_channels, size, size))
    except ShapeError as exc:
        raise CnnvizError(f"{network} does not run at {size}×{size}: {exc}") from None


def _trainable(spec, network: str, size: int, dataset: str) -> None:
    """Refuse before training a run that could only break off at its first step: a network
    without weights, one that does not run at the size, or one with fewer class scores than
    the data set has classes (a custom chain's last layer decides, not num_classes)."""
    if not any(True for _ in build_meta(spec).parameters()):
        raise CnnvizError(f"{network} has no parameters to train; add a conv or linear layer")
    out = _runs(spec, network, size)
    classes = DATASETS[dataset].num_classes
    if len(out) != 1 or out[0] < classes:
        raise CnnvizError(f"{network} outputs {fmt_shape(out)} per image, but {dataset} has "
                          f"{classes} classes: its last layer must give {classes} class "
                          "scores (a head: adaptive average pooling, flatten, linear)")


def _accuracy(value: float | None) -> str:
    """The final test accuracy as the README shows it: ``0.97``; ``n/a`` before any test."""
    return "n/a" if value is None else f"{value:.2f}"


def _print_epoch(point, as_json: bool) -> None:
    row = {"epoch": round(point.epoch, 4), "train_loss": round(point.train_loss, 6),
           "train_acc": round(point.train_acc, 6), "test_acc": round(point.test_acc, 6),
           "examples_per_sec": round(point.examples_per_sec, 1),
           "seconds": round(point.seconds, 3),
           "train_seconds": round(point.train_seconds or point.seconds, 3)}
    print(json.dumps(row) if as_json else
          f"epoch {row['epoch']:g}: loss {row['train_loss']:.4f}, train acc "
          f"{row['train_acc']:.3f}, test acc {row['test_acc']:.3f}, "
          f"{row['examples_per_sec']:,.0f} examples/s, {row['seconds']:.1f} s", flush=True)


def cmd_limits(args) -> int:
    """The teachers' caps in force (docs/teaching.md); a cap variable that is set but not a
    positive number is said on stderr, one line each, and its default holds."""
    for line in limits.bad_settings():
        print(f"cnnviz: warning: {_one_line(line)}", file=sys.stderr)
    rows = limits.table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    var_w = max(len(r["variable"]) for r in rows) + 2
    now_w = max(len(r["now"]) for r in rows) + 2
    print(f"{'variable':{var_w}}{'now':>{now_w}}  caps (default)")
    for r in rows:
        print(f"{r['variable']:{var_w}}{r['now']:>{now_w}}  {r['caps']} ({r['default']})")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cnnviz",
                     description="Explore the classic CNNs of Dive into Deep Learning.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("presets", help="list the named networks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_presets)
    p = sub.add_parser("summary", help="layer table with shapes, params and conv arithmetic")
    p.add_argument("network", help="a preset name or a CONFIG.json file")
    p.add_argument("--size", help="input side N, or HxW (default: the network's own size)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_summary)
    p = sub.add_parser("sizes", help="the square input sizes the network accepts")
    p.add_argument("network", help="a preset name or a CONFIG.json file")
    p.add_argument("--max", type=int, default=1024, help="largest size to check (1024)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_sizes)
    p = sub.add_parser("graph", help="the network as a graph: layers, adds and concatenations, "
                                     "typed connections, folded into stages and blocks")
    p.add_argument("network", help="a preset name or a CONFIG.json file")
    p.add_argument("--depth", type=int, default=1,
                   help="1: stages (default); 2: blocks; 3 or more: every layer")
    p.add_argument("--open", action="append", default=[], metavar="PATH",
                   help="show this stage or block one level deeper (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_graph)
    p = sub.add_parser("train", help="a short training run; one line per epoch")
    p.add_argument("network", help="a preset name or a CONFIG.json file")
    p.add_argument("--dataset", default="fashion-mnist", choices=list(DATASETS),
                   help="fashion-mnist (default) and the others download once through "
                        "torchvision; digits is offline")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int,
                   help=f"default: the book's for the family ({book_defaults_text('batch_size')})")
    p.add_argument("--lr", type=float,
                   help=f"default: the book's for the family ({book_defaults_text('lr')})")
    p.add_argument("--size", type=int, help="input side (default: the network's)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--recipe", default="book", choices=RECIPES,
                   help="book: plain SGD; fast: Nesterov momentum, one-cycle lr, label smoothing")
    p.add_argument("--time-budget", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--augment", action="store_true", help=augmentation_text())
    p.add_argument("--limit", type=int, help="use only the first N examples of each split")
    p.add_argument("--data-root", help="where data sets are downloaded (default: "
                                       "$CNNVIZ_DATA or ~/.cache/cnnviz/data)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_train)
    p = sub.add_parser("limits", help="the caps this server holds a class to (environment "
                                      "variables; see docs/teaching.md)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_limits)
    return parser


def _one_line(text: str) -> str:
    """Control characters (newlines, terminal escapes) from file names or keys, escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
        return args.run(args)
    except CnnvizError as exc:
        print(f"cnnviz: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("cnnviz: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, with what to report
        print(_one_line(f"cnnviz: internal error ({type(exc).__name__}: {exc}); please "
                        "report it"), file=sys.stderr)
        return 1
