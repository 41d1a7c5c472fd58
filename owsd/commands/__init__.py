"""One module per `owsd` command, each with `main(argv)`; `owsd.cli` only dispatches to them."""
