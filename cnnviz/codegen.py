"""A spec as standalone PyTorch source: what a learner copies into a notebook to train it.

The source is rendered from the built model's module tree (not from the spec), so it is the
network cnnviz runs, layer for layer: the same child names give the same ``state_dict`` keys,
and a ``state_dict`` saved from cnnviz loads into the generated model with ``strict=True``.
The generated file needs only ``torch``.
"""
from __future__ import annotations

import ast
import inspect

from torch import nn

from cnnviz.models import build_meta
from cnnviz.models.blocks import init_weights, runs_in_order

LINE_WIDTH = 88  # a call that fits in this many columns stays on one line
INDENT = "    "


# What a block class has only for cnnviz's own analysis; the generated file leaves it out.
LIBRARY_ONLY = ("shape_rule", "out_channels")


def block_source(cls: type) -> str:
    """The source of a block class as cnnviz defines it, less its LIBRARY_ONLY members.

    The constructors take the already-built submodules, so the generated model nests (and so
    names its ``state_dict`` keys) exactly as cnnviz's does.
    """
    source = inspect.getsource(cls)
    lines = source.splitlines(keepends=True)
    (node,) = ast.parse(source).body
    drop: set[int] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name in LIBRARY_ONLY:
            first = min([item.lineno, *(d.lineno for d in item.decorator_list)])
            drop.update(range(first - 1, item.end_lineno))
            if item.end_lineno < len(lines) and not lines[item.end_lineno].strip():
                drop.add(item.end_lineno)  # the blank line after it
    return "".join(line for i, line in enumerate(lines) if i not in drop).rstrip() + "\n"


# The generated file initialises exactly as cnnviz's builders do: the same function.
INIT_SOURCE = inspect.getsource(init_weights)

MAIN_SOURCE = '''if __name__ == "__main__":
    model = build_model().eval()  # eval: BatchNorm uses running statistics with batch size 1
    with torch.no_grad():
        output = model(torch.zeros(INPUT_SHAPE))
    print("output shape:", tuple(output.shape))
    print("parameters:", sum(p.numel() for p in model.parameters()))
'''


def _avg_pool_args(module: nn.AvgPool2d) -> str:
    # AvgPool2d's extra_repr leaves out ceil_mode and count_include_pad, which change sizes.
    args = f"kernel_size={module.kernel_size!r}, stride={module.stride!r}, " \
           f"padding={module.padding!r}"
    if module.ceil_mode:
        args += ", ceil_mode=True"
    if not module.count_include_pad:
        args += ", count_include_pad=False"
    if module.divisor_override is not None:
        args += f", divisor_override={module.divisor_override!r}"
    return args


# extra_repr is a valid argument list for these (the tests rebuild every layer from it).
LEAF_TYPES = (nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Linear, nn.MaxPool2d,
              nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.ReLU, nn.Sigmoid, nn.GELU, nn.Tanh,
              nn.Dropout, nn.Flatten, nn.Identity)
ALWAYS_SHOWN = {"p"}  # nn.Dropout() hides the rate a learner wants to see


def _split_args(text: str) -> list[str]:
    """Split an argument list at the commas outside brackets and quotes."""
    args, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        args.append(text[start:].strip())
    return args


def _compact(cls: type, args: str) -> str:
    """Write ``kernel_size=(3, 3), stride=(1, 1)`` as the book does: ``kernel_size=3``.

    Square pairs become one number and keywords equal to the constructor's default go, so
    ``BatchNorm2d(64)`` is not buried under momentum, affine and track_running_stats.
    """
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
    kept = []
    for arg in _split_args(args):
        key, eq, text = arg.partition("=")
        if not eq:
            kept.append(arg)
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # Conv2d writes padding=same and padding_mode=... unquoted
        if isinstance(value, tuple) and value and len(set(value)) == 1:
            value = value[0]  # (3, 3) → 3: these layers accept an int for a square window
        if key in ALWAYS_SHOWN or key not in defaults or value != defaults[key]:
            kept.append(f"{key}={value!r}")
    return ", ".join(kept)


def leaf_source(module: nn.Module) -> str:
    """``nn.Conv2d(1, 6, kernel_size=5, padding=2)``: the constructor call of one torch layer."""
    cls = type(module)
    if cls not in LEAF_TYPES:
        raise TypeError(f"no source for layer type {cls.__name__}")
    args = _avg_pool_args(module) if cls is nn.AvgPool2d else module.extra_repr()
    return f"nn.{cls.__name__}({_compact(cls, args)})"


class _Renderer:
    def __init__(self):
        self.blocks_used: list[type] = []  # in first-use order, for the class definitions

    def render(self, module: nn.Module, level: int, width: int = LINE_WIDTH) -> str:
        """Source for ``module``, starting ``level`` indents in; the first line has ``width``
        columns in all (less when a prefix such as ``('b1', `` sits before it)."""
        if isinstance(module, nn.Sequential) and runs_in_order(module):
            return self._sequential(module, level, width)
        if type(module) in LEAF_TYPES or not type(module).__module__.startswith("cnnviz."):
            return leaf_source(module)  # a torch layer (TypeError for one it cannot write)
        # A block with a forward of its own: its class goes into the file, and its
        # constructor gets the built submodules its signature names.
        block = type(module)
        self._use(block)
        children = [getattr(module, param) for param in inspect.signature(block).parameters]
        # One list argument hugs the call, ``DenseBlock([...])``; otherwise one per line.
        hug = len(children) == 1 and isinstance(children[0], nn.ModuleList)
        inner = level if hug else level + 1
        args = []
        for child in children:
            if isinstance(child, nn.ModuleList):
                items = [self.render(c, inner + 1) for c in child]
                args.append(self._call("", items, inner, "[]"))
            else:
                args.append(self.render(child, inner))
        return self._call(block.__name__, args, level, hug=hug, width=width)

    def _use(self, block: type) -> None:
        if block not in self.blocks_used:
            self.blocks_used.append(block)

    def _sequential(self, module: nn.Sequential, level: int, width: int) -> str:
        # VGGBlock, NiNBlock and Transition are chains: plain nn.Sequential keeps their keys.
        names = list(module._modules)
        if names == [str(i) for i in range(len(names))]:  # positional names: same keys
            children = [self.render(m, level + 1) for m in module]
            return self._call("nn.Sequential", children, level, width=width)
        items = [f"({name!r}, {self.render(child, level + 1, LINE_WIDTH - len(name) - 5)})"
                 for name, child in module.named_children()]
        entries = self._call("", items, level, "[]")
        ordered = self._call("OrderedDict", [entries], level, hug=True)
        return self._call("nn.Sequential", [ordered], level, hug=True, width=width)

    @staticmethod
    def _call(callee: str, args: list[str], level: int, brackets: str = "()",
              hug: bool = False, width: int = LINE_WIDTH) -> str:
        """``callee(a, b)`` on one line when it fits, otherwise one argument per line.

        ``hug`` wraps a single bracketed argument without a line of its own: ``f([...])``.
        """
        open_, close = brackets
        one_line = f"{callee}{open_}{', '.join(args)}{close}"
        if "\n" not in one_line and len(INDENT * level) + len(one_line) <= width:
            return one_line
        if hug:
            return f"{callee}{open_}{args[0]}{close}"
        inner = INDENT * (level + 1)
        body = "".join(f"{inner}{a},\n" for a in args)
        return f"{callee}{open_}\n{body}{INDENT * level}{close}"


def pytorch_source(spec) -> str:
    """Standalone, runnable PyTorch source for the network ``spec`` describes."""
    model = build_meta(spec)  # structure and sizes only: no weights to initialise
    renderer = _Renderer()
    body = renderer.render(model, 1, LINE_WIDTH - len("model = "))
    params = sum(p.numel() for p in model.parameters())
    input_shape = (1, spec.in_channels, spec.input_size, spec.input_size)
    title = type(spec).title
    imports = ["import torch", "from torch import nn"]
    if "OrderedDict(" in body:
        imports.insert(0, "from collections import OrderedDict\n")
    parts = [
        f'"""{title} for inputs of shape {input_shape}: {params:,} parameters.\n\n'
        'Generated by cnnviz; needs only PyTorch. Run it to check the output shape.\n"""',
        "\n".join(imports),
        f"INPUT_SHAPE = {input_shape}",
        *[block_source(block) for block in renderer.blocks_used],
        INIT_SOURCE,
        f"def build_model() -> nn.Module:\n{INDENT}model = {body}\n"
        f"{INDENT}return init_weights(model)\n",
        MAIN_SOURCE,
    ]
    parts = [p.rstrip("\n") for p in parts]
    # PEP 8: two blank lines around top-level classes and functions
    return "\n\n".join(parts[:3]) + "\n\n\n" + "\n\n\n".join(parts[3:]) + "\n"
