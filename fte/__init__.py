"""FTE Research: a durable multi-agent research pipeline on Dapr Workflows."""

from importlib.resources import files
from pathlib import Path

__version__ = "0.1.0"


def package_path(*parts: str) -> Path:
    """A data directory shipped inside the `fte` package (prompts, components, Go module).

    Found through `importlib.resources`, never through the checkout, so an installed wheel finds
    its own copy. It must be a real filesystem path: daprd reads the components directory and
    `go build` runs in the Go module. The package is always installed unpacked (pip unpacks
    wheels; an editable install maps `fte` to the checkout, whose symlinks such as
    fte/prompts -> ../prompts resolve), so `files("fte")` is a plain `Path` and no temporary
    extraction (`as_file`) is needed; a zipped install is refused here rather than failing later.
    """
    root = files(__name__)
    if not isinstance(root, Path):
        raise RuntimeError(f"the fte package must be installed unpacked, not loaded from {root}")
    return root.joinpath(*parts)
