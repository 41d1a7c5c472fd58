"""One module per `owsd` command, each with `main(argv)`; `owsd.cli` only dispatches to them."""

# name → (module in owsd.commands, one line for `owsd --help`); modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "key": (
        "key",
        "keys: `new PATH`, `rotate --config FILE` (retire the key for a new one), `list` (the ledger), "
        "`budget FP N` (change a key's budget)",
    ),
    "keygen": ("key", "same as `owsd key new PATH`: write a new 256-bit key file (mode 0600)"),
    "fit": ("train", "fill the cache, train and test the IIN and each `compare` input, print the table"),
    "validate": ("train", "evaluate a trained IIN checkpoint on the validation split"),
    "test": ("train", "evaluate a trained IIN checkpoint on the test split"),
    "analyze": ("analyze", "what the cloud sees and answers: image grid, label overlap, entropy, PCA (paper §5.1–5.2)"),
    "attack": ("attack", "attack suite over the adversary's resources, defences and the key budget"),
    "sweep": ("sweep", "run a wandb sweep YAML offline with W&B's sweep engine; trials table in --out"),
    "predict": ("predict", "classify new images with a trained IIN: scramble, ask the cloud, write top-k CSV/JSON"),
    "run": ("run", "repeat a config's experiment over seeds (and sizes, ensembles, recipes) from one cache"),
    "report": ("report", "the paper's tables and Figure 2 from `owsd run` folders, beside the paper's numbers"),
    "train-cloud": (
        "train_cloud",
        "train a cloud classifier (small CNN or timm) on a source's cloud_split; HubCloud loads its checkpoint",
    ),
    "serve-cloud": (
        "serve_cloud",
        "serve a timm classifier over the Open Inference Protocol (v2 REST), for RemoteCloud",
    ),
}
