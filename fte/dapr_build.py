"""Build the Dapr runtime binaries from the pinned Go module and cache them.

The binaries (daprd, placement, scheduler) are built from `sidecar/`, a Go
module that requires `github.com/dapr/dapr` (shipped in the package as
`fte/dapr_sidecar`, so an installed wheel can build it too). They are installed into
`<cache>/dapr/<version>-<wrapper hash>/` outside the repository, so every
clone and CI run on a machine reuses one build; a change to the version or to
any file of the wrapper module produces a new hash and therefore a rebuild.

`sidecar/patches/*.patch` are our changes to `github.com/dapr/dapr` (unified diffs, each
saying what it changes and why); the build applies them with `git apply` to a copy of that
module outside the repository and compiles the copy. They are part of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fte import package_path
from fte.errors import SidecarBuildError

# The Go module ships inside the package (fte/dapr_sidecar -> ../sidecar in the checkout) with
# the same relative paths, so the checkout and an installed wheel hash to one build directory.
SIDECAR_MODULE = package_path("dapr_sidecar")
ROLES = ("daprd", "placement", "scheduler")
_READY_MARKER = "BUILD_OK"
_GO_META = ("go.mod", "go.sum")
# Part of the cache key too: a change in how we build is a change in what we built.
_BUILD_FLAGS = ("-trimpath", "-buildvcs=false")
_PATCH_DIR = "patches"
_DAPR_MODULE = "github.com/dapr/dapr"


@dataclass(frozen=True)
class SidecarBinaries:
    """Paths of one complete set of runtime binaries."""

    daprd: Path
    placement: Path
    scheduler: Path
    origin: str
    patched: bool = False
    """Built here with `sidecar/patches`, so they take the flags those patches add (binaries
    from `dapr init --slim` or FTE_DAPRD are upstream's and would refuse them)."""

    @classmethod
    def in_dir(cls, directory: Path, origin: str, *, patched: bool = False) -> SidecarBinaries:
        return cls(
            daprd=directory / "daprd",
            placement=directory / "placement",
            scheduler=directory / "scheduler",
            origin=origin,
            patched=patched,
        )

    def exist(self) -> bool:
        return all(os.access(p, os.X_OK) for p in (self.daprd, self.placement, self.scheduler))


def cache_root() -> Path:
    """Where built runtimes live: FTE_CACHE_DIR, else XDG_CACHE_HOME/fte, else ~/.cache/fte."""
    explicit = os.environ.get("FTE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fte"


def dapr_version(module: Path = SIDECAR_MODULE) -> str:
    """The `github.com/dapr/dapr` version the wrapper module pins."""
    go_mod = (module / "go.mod").read_text()
    match = re.search(r"^\s*require\s+github\.com/dapr/dapr\s+(v\S+)", go_mod, re.MULTILINE)
    if not match:
        match = re.search(r"^\s+github\.com/dapr/dapr\s+(v\S+)", go_mod, re.MULTILINE)
    if not match:
        raise SidecarBuildError(f"{module / 'go.mod'} does not require github.com/dapr/dapr")
    return match.group(1)


def wrapper_hash(module: Path = SIDECAR_MODULE) -> str:
    """A digest of every source file of the wrapper module (go.mod, go.sum, *.go, *.patch)."""
    digest = hashlib.sha256(" ".join(_BUILD_FLAGS).encode() + b"\0")
    files = sorted(
        p
        for p in module.rglob("*")
        if p.is_file() and (p.suffix in (".go", ".patch") or p.name in _GO_META)
    )
    for path in files:
        digest.update(path.relative_to(module).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def build_dir(module: Path = SIDECAR_MODULE) -> Path:
    return cache_root() / "dapr" / f"{dapr_version(module)}-{wrapper_hash(module)}"


def cached_build(module: Path = SIDECAR_MODULE) -> SidecarBinaries | None:
    directory = build_dir(module)
    binaries = SidecarBinaries.in_dir(directory, origin=f"project build {directory}", patched=True)
    if (directory / _READY_MARKER).exists() and binaries.exist():
        return binaries
    return None


def _go_executable() -> str:
    go = shutil.which("go")
    if go is None:
        raise SidecarBuildError(
            "Go is not installed, so the Dapr runtime cannot be built: install Go >= 1.26 "
            "(https://go.dev/doc/install or `apt-get install golang`), or set FTE_DAPRD to an "
            "existing daprd binary (placement and scheduler are looked up beside it)."
        )
    return go


def build(
    module: Path = SIDECAR_MODULE,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SidecarBinaries:
    """Build daprd, placement and scheduler into the cache, unless already there.

    `progress` receives human-readable lines while `go build` runs (it can take
    several minutes on a cold module cache).
    """
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    if not force:
        existing = cached_build(module)
        if existing is not None:
            return existing

    go = _go_executable()
    target = build_dir(module)
    version = dapr_version(module)
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = target.parent / f"build-{target.name}.log"

    env = dict(os.environ, CGO_ENABLED="0")
    ldflags = f"-X github.com/dapr/dapr/pkg/buildinfo.version={version.removeprefix('v')}"
    scratch = target.with_name(target.name + f".src-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        cmd = [
            go, "build", "-v", *_BUILD_FLAGS, "-ldflags", ldflags,
            *_patched_module_flags(go, module, version, env, scratch),
            "-o", str(staging) + os.sep, "./cmd/daprd", "./cmd/placement", "./cmd/scheduler",
        ]  # fmt: skip
        say(f"Building the Dapr runtime {version} from source into {target} (first run only)")
        say(f"  go build log: {log_path}")
        started = time.monotonic()
        compiled = 0
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=module,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            last_report = started
            for line in proc.stdout:
                log.write(line)
                compiled += 1
                now = time.monotonic()
                if now - last_report >= 15:
                    say(f"  ... {compiled} packages compiled, {now - started:.0f}s elapsed")
                    last_report = now
            returncode = proc.wait()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SidecarBuildError(
            f"building the Dapr runtime failed (exit {returncode}): {tail[0]} — see {log_path}"
        )
    elapsed = time.monotonic() - started
    (staging / _READY_MARKER).write_text(
        f"dapr {version}\nwrapper {wrapper_hash(module)}\nbuild_seconds {elapsed:.0f}\n"
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    say(f"Dapr runtime {version} built in {time.monotonic() - started:.0f}s")
    return SidecarBinaries.in_dir(target, origin=f"project build {target}", patched=True)


def _patched_module_flags(
    go: str, module: Path, version: str, env: dict[str, str], scratch: Path
) -> list[str]:
    """Build flags that compile the patched copy of github.com/dapr/dapr, if there are patches.

    Go refuses to build patched files in its module cache, so the module is copied out of
    it, the patches are applied to the copy, and a generated go.mod (`-modfile`) replaces the
    module with the copy. The wrapper's own go.mod and go.sum stay untouched.
    """
    patches = sorted((module / _PATCH_DIR).glob("*.patch"))
    if not patches:
        return []
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{_DAPR_MODULE}@{version}"],
        cwd=module,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SidecarBuildError(f"downloading {_DAPR_MODULE}@{version} failed: {detail}")
    upstream = Path(json.loads(done.stdout)["Dir"])
    copy = scratch / "dapr"
    shutil.copytree(upstream, copy, copy_function=shutil.copyfile)
    for directory, _, _ in os.walk(copy):
        os.chmod(directory, 0o755)  # the module cache is read-only, and so is a plain copy
    git = shutil.which("git")
    if git is None:
        raise SidecarBuildError("git is needed to apply sidecar/patches: install git")
    for patch in patches:
        # Outside a repository `git apply` patches plain files; --check first, so a patch
        # that no longer fits upstream fails with its name instead of half-applied.
        for check in (["--check"], []):
            applied = subprocess.run(
                [git, "apply", *check, str(patch)],
                cwd=copy,
                capture_output=True,
                text=True,
                check=False,
            )
            if applied.returncode != 0:
                detail = (applied.stderr.strip().splitlines() or ["(no output)"])[0]
                raise SidecarBuildError(
                    f"{patch.name} does not apply to {_DAPR_MODULE}@{version}: {detail}"
                )
    go_mod = scratch / "go.mod"
    go_mod.write_text((module / "go.mod").read_text() + f"\nreplace {_DAPR_MODULE} => {copy}\n")
    shutil.copyfile(module / "go.sum", scratch / "go.sum")
    return ["-modfile", str(go_mod)]


def find_binaries(*, build_if_missing: bool = True) -> SidecarBinaries:
    """Locate runtime binaries: FTE_DAPRD, then `dapr init --slim`, then the project build."""
    explicit = os.environ.get("FTE_DAPRD")
    if explicit:
        daprd = Path(explicit).expanduser()
        binaries = SidecarBinaries(
            daprd=daprd,
            placement=daprd.with_name("placement"),
            scheduler=daprd.with_name("scheduler"),
            origin=f"FTE_DAPRD={daprd}",
        )
        if not binaries.exist():
            raise SidecarBuildError(
                f"FTE_DAPRD points at {daprd}, but daprd, placement and scheduler must all be "
                f"executables in {daprd.parent}"
            )
        return binaries

    slim = SidecarBinaries.in_dir(Path.home() / ".dapr" / "bin", origin="dapr init --slim")
    if slim.exist():
        return slim

    cached = cached_build()
    if cached is not None:
        return cached
    if not build_if_missing:
        raise SidecarBuildError(
            "no Dapr runtime found: run `make sidecar` to build it (or set FTE_DAPRD)"
        )
    return build()
