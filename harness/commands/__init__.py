"""One module per ``harness`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
