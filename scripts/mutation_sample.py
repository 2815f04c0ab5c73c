"""A seeded random sample of one package's mutants, for scripts/mutation --sample.

    python scripts/mutation_sample.py pick N SEED    write every mutant; the sample of N into
                                                 sample.txt, those not yet killed into
                                                 sample-to-run.txt
    python scripts/mutation_sample.py score PACKAGE  the sample's counts and estimated score

Both run in the package's copy, mutants/PACKAGE.

A package too large to run whole on this machine is measured on a simple random sample of its
mutants: the share caught in the sample estimates the package's score, with a 95 % interval
(normal approximation, p ± 1.96·√(p(1 − p)/n)). The sample is fixed by its seed, so a rerun after
new tests runs the same mutants again, those not yet killed
(``scripts/mutation PACKAGE --sample N`` once more).
"""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

SAMPLE = Path("sample.txt")
TO_RUN = Path("sample-to-run.txt")  # the sample's mutants not yet killed


def every_mutant() -> dict[str, int | None]:
    """Each mutant's exit code from mutmut's result files (None: not checked yet)."""
    return {name: code for meta in Path("mutants").rglob("*.meta")
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()}


def pick(size: int, seed: int) -> list[str]:
    """mutmut's own first step (copy the tree, write every mutant), then the sample."""
    from mutmut.__main__ import create_mutants, set_mutant_under_test
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths

    set_mutant_under_test("mutant_generation")
    Path("mutants").mkdir(exist_ok=True)
    copy_src_dir()
    copy_also_copy_files()
    setup_source_paths()
    create_mutants(2)
    codes = every_mutant()
    names = sorted(codes)
    chosen = sorted(random.Random(seed).sample(names, min(size, len(names))))
    SAMPLE.write_text("\n".join(chosen) + "\n")
    # A killed mutant stays killed (tests are only added); the rest are run (again).
    from mutmut.stats import status_by_exit_code
    left = [n for n in chosen if codes[n] is None
            or status_by_exit_code[codes[n]] not in ("killed", "timeout")]
    TO_RUN.write_text("".join(f"{n}\n" for n in left))
    return chosen


def score(package: str) -> str:
    from mutmut.stats import status_by_exit_code

    picked = set(SAMPLE.read_text().split())
    codes = every_mutant()
    status = [status_by_exit_code[codes[name]] for name in picked
              if name in codes and codes[name] is not None]
    status = [s for s in status if s != "skipped"]
    caught = sum(s in ("killed", "timeout") for s in status)
    lines = [f"cnnviz/{package}: a random sample of {len(picked)} of {len(codes)} mutants, "
             f"{len(status)} checked: {caught} killed or timed out, "
             f"{sum(s == 'survived' for s in status)} survived, "
             f"{sum(s == 'no tests' for s in status)} no tests"]
    if status:
        p = caught / len(status)
        half = 1.96 * math.sqrt(p * (1 - p) / len(status))
        lines.append(f"estimated score {100 * p:.1f} % (95 % interval "
                     f"{100 * max(0.0, p - half):.1f}–{100 * min(1.0, p + half):.1f} %)")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "pick":
        chosen = pick(int(sys.argv[2]), int(sys.argv[3]))
        left = len(TO_RUN.read_text().split())
        print(f"Sampled {len(chosen)} mutants ({SAMPLE}); {len(chosen) - left} already killed, "
              f"{left} to run.")
    else:
        print(score(sys.argv[2]))
