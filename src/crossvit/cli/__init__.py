"""The ``crossvit`` command: the dispatcher (:mod:`.main`) and one module per subcommand, each with
``add_arguments`` and ``main``. Nothing below this package imports it."""

from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
