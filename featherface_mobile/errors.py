"""The one exception type whose message is shown to users as a one-line error."""


class FeatherfaceError(Exception):
    """A user-facing problem: the message names the problem and the fix, on one line."""


class MissingDependency(FeatherfaceError):
    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed; install the '{extra}' extra: pip install 'featherface-mobile[{extra}]'"
        )
        self.module, self.extra = module, extra


def require(module: str, extra: str):
    """Import an optional dependency or raise a one-line error naming the extra to install.

    The import runs inside `warnings.catch_warnings()`: onnx2tf's import sets a global "ignore every
    Warning" filter, which would otherwise silence featherface's own warnings (e.g. too few
    calibration images) for the rest of the process.
    """
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():
            return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(module, extra) from None


def run_script(main) -> None:
    """Run a script's `main()` (benchmarks/) with the CLI's contract: a FeatherfaceError is one line, exit 1."""
    import sys

    try:
        main()
    except FeatherfaceError as err:
        sys.exit(f"error: {err}")
