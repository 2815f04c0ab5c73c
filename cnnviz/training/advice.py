"""What to tell a learner whose run ended near chance: why that is likely and what to try,
computed from the run itself (the steps it took, its recipe, its activations, whether it has
BatchNorm), so a flat curve does not read as a broken app."""
from __future__ import annotations

import math

from torch import nn

from cnnviz.errors import CnnvizError
from cnnviz.models import build_meta
from cnnviz.training.config import TrainConfig
from cnnviz.training.datasets import dataset_info
from cnnviz.training.recipe import plan_batches

# A test accuracy at most this far above 1/classes counts as chance.
NEAR_CHANCE = 0.05


def format_epochs(epochs: float) -> str:
    """Epochs done as pages show them: 2, 1.67, 0.5."""
    return f"{epochs:.2f}".rstrip("0").rstrip(".")


def chance_level(num_classes: int) -> float:
    """The accuracy of guessing one class for every image (balanced classes)."""
    return 1 / max(num_classes, 1)


def near_chance(test_acc: float | None, num_classes: int) -> bool:
    return test_acc is not None and test_acc <= chance_level(num_classes) + NEAR_CHANCE


def steps_taken(config: TrainConfig, epochs: float) -> int:
    """Optimizer steps a run on ``config`` took in ``epochs`` (fractional) epochs."""
    train_examples, _ = dataset_info(config.dataset).split_sizes(config.limit)
    return round(epochs * plan_batches(train_examples, config.batch_size).steps)


def _layers(spec) -> tuple[bool, bool]:
    """(has BatchNorm, has sigmoids) for the network of ``spec``."""
    try:
        model = build_meta(spec)
    except CnnvizError:
        return False, False
    modules = list(model.modules())
    return (any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules),
            any(isinstance(m, nn.Sigmoid) for m in modules))


def chance_advice(spec, config: TrainConfig, epochs: float, train_loss: float,
                  test_acc: float | None) -> str | None:
    """Markdown for a run that ended near chance (None for any other run): the likely reason
    and what to try, from ``config`` (resolved), the epochs done and the final figures."""
    info = dataset_info(config.dataset)
    classes = info.num_classes
    if not near_chance(test_acc, classes):
        return None
    batch_norm, sigmoid = _layers(spec)
    steps = steps_taken(config, epochs)
    train_examples, _ = info.split_sizes(config.limit)
    per_epoch = plan_batches(train_examples, config.batch_size)
    guess = math.log(classes)
    loss = (f" The training loss, {train_loss:.2f}, is still about ln {classes} = {guess:.2f}: "
            f"what guessing gives." if abs(train_loss - guess) < 0.1 * guess else "")
    optimizer = "plain SGD (the book recipe)" if config.recipe == "book" else \
        "the fast recipe"
    few = "only " if steps < 1000 else ""
    plural = "s" if steps != 1 else ""
    why = [f"it took {few}**{steps:,} optimizer step{plural}** ({format_epochs(epochs)} epochs of "
           f"{per_epoch.steps:,} batches of up to {per_epoch.batch_size:,} from "
           f"{train_examples:,} training images) with {optimizer}"]
    if sigmoid and not batch_norm:
        why.append("its sigmoid activations pass back small gradients, and without BatchNorm "
                   "a network like this can sit at guessing for thousands of steps before "
                   "its loss starts to fall")
    tries = []
    if not batch_norm:
        tries.append("**BatchNorm**: the **lenet-bn** preset (the book's section 7.5) in the "
                     "sidebar" if spec.family == "lenet" else
                     "**BatchNorm** after the convolutions (in **Build**)")
    if config.recipe == "book":
        tries.append("the **fast** recipe: momentum and a one-cycle learning rate")
    tries.append("**more steps**: more epochs, or a smaller batch size for more steps per "
                 "epoch")
    if batch_norm:
        tries.append(f"another **learning rate** than {config.lr:g}")
    return (f"**Test accuracy {test_acc:.1%} is about chance** (guessing among {classes} "
            f"classes gives {chance_level(classes):.1%}): the network has not learned to tell the classes "
            f"apart yet, and the app is working as it should.{loss}\n\n"
            f"Likely why: " + "; ".join(why) + ".\n\nTry:\n" +
            "\n".join(f"- {t}" for t in tries))
