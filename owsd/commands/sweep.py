"""`owsd sweep SWEEP.yaml --trials N [--out DIR] [ARGS...]`: a W&B sweep run locally, with no account.

Arguments it does not know are appended to every trial's command after the sweep's parameters (so they win),
e.g. `--config=tests/fixtures/small.yaml` for a smoke run. The trials, their wandb runs and checkpoints are
written to `OUT.partial`, which becomes `--out` when the sweep ends; a sweep that is stopped keeps its
finished trials there, and the same command run again continues from them to `--trials`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from owsd.commands.output import OutputFolder
from owsd.experiments.sweep import Trial, load_sweep, ranked, run_sweep, write_results
from owsd.ranges import Count, option


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="owsd sweep",
        allow_abbrev=False,
        description="Run a wandb sweep YAML offline: W&B's sweep engine proposes trials, each runs as "
        "`wandb agent` would (WANDB_MODE=offline); results go to OUT/trials.json and OUT/trials.md.",
        epilog="Other arguments are appended to each trial's command (use --name=value forms).",
    )
    parser.add_argument("sweep", type=Path, help="a wandb sweep YAML, e.g. sweeps/iin_size.yaml")
    parser.add_argument("--trials", type=option(Count), required=True, help="trials to run (a grid may end sooner)")
    parser.add_argument("--out", type=Path, help="new folder for the results (default: runs/sweeps/<sweep name>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the engine's proposals (random, bayes)")
    args, extra = parser.parse_known_args(argv[1:])
    config = load_sweep(args.sweep)
    out = args.out or Path("runs/sweeps") / args.sweep.stem
    trials: list[Trial] = []
    settings = f"{json.dumps(config, sort_keys=True, default=str)}\n{extra}\nseed {args.seed}"  # not --trials
    with OutputFolder(out, settings, progress=lambda: f"{len(trials)} trials finished") as folder:
        run_sweep(config, args.trials, extra, folder, done=trials, seed=args.seed)
        write_results(trials, config, folder)
    best = ranked(trials, config["metric"].get("goal", "minimize"))[0]
    if best.metric is not None:
        print(f"best of {len(trials)} trials: {config['metric']['name']}={best.metric:.4f} with {best.parameters}")
    print(f"wrote {out}/trials.md and {out}/trials.json")
    if best.metric is None:
        print(f"owsd: error: every trial failed; {out}/trials.md says why", file=sys.stderr)
        sys.exit(1)
