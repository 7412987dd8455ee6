"""Profile of the throughput load (issue 11): where 50 simultaneous runs spend their CPU.

The load is benchmarks/perf.py's (`throughput_load`: 50 offline research runs of 4
sub-questions at once, one worker in this process, the real embedded stack). This script

1. profiles one load: py-spy samples this process (the worker and the benchmark client),
   daprd's own pprof server gives a Go CPU profile (`--enable-profiling`; the SQLite state
   store is inside daprd: modernc.org/sqlite), and Linux perf samples the scheduler (1.18.2
   has no profiling flag). It prints the top functions of each process, their CPU grouped by
   package, the CPU cores each process used, and a verdict naming the bottleneck;
2. runs A/B variants (settings that might help) on fresh stacks, alternating variant order
   round by round because the machine is shared and its load drifts, and prints the median
   activities/s of each beside the baseline measured in the same run.

    python benchmarks/profile_throughput.py [--runs 50] [--rounds 3] [--seconds 6]
                                            [--variants baseline,sqlite-normal,...] [--no-profile]

Needs py-spy (PyPI), Linux perf (`apt-get install linux-perf`) and Go (`go tool pprof`); a
profiler that is missing is reported and skipped, the A/B still runs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from perf import (
    Counter,
    Throughput,
    counting,
    research_run,
    run_config,
    throughput_load,
)

from fte import wiring
from fte.dapr_build import SidecarBinaries, find_binaries
from fte.dapr_clients import workflow_client
from fte.dapr_stack import DEFAULT_COMPONENTS_DIR, EmbeddedStack, free_port, read_record
from fte.llm import LLMConfig
from fte.logs import configure_logging

TOP = 15
# The machine's cores: a process group that uses them all is CPU-bound by definition.
CORES = os.cpu_count() or 1


# -- variants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A stack set-up to measure: flags per role, the state store's connection string."""

    name: str
    note: str
    flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    connection_string: str | None = None
    log_level: str = "info"
    go_env: dict[str, str] = field(default_factory=dict)
    """Environment for placement, scheduler and daprd (the launcher passes GOGC and the like)."""

    def components(self, tmp: Path) -> Path:
        """The components directory: the project's, or a copy with another connection string."""
        if self.connection_string is None:
            return DEFAULT_COMPONENTS_DIR
        target = tmp / f"components-{self.name}"
        if not target.exists():
            shutil.copytree(DEFAULT_COMPONENTS_DIR, target)
            store = target / "statestore.yaml"
            # The value line right after `- name: connectionString`.
            text, found = re.subn(
                r'(name: connectionString\n\s*value: )"[^"]*"',
                rf'\g<1>"{self.connection_string}"',
                store.read_text(),
            )
            if found != 1:
                raise SystemExit("statestore.yaml changed: update profile_throughput.Variant")
            store.write_text(text)
        return target


VARIANTS = {
    v.name: v
    for v in (
        Variant("baseline", "the project's settings"),
        Variant(
            "sqlite-normal",
            "state store PRAGMA synchronous=NORMAL (WAL: durable across process crashes, "
            "the last commits may be lost on power loss; not adopted, see statestore.yaml)",
            connection_string="state.db?_pragma=synchronous(NORMAL)",
        ),
        Variant(
            "etcd-snapshot-10000",
            "scheduler --etcd-snapshot-count 10000 (the launcher passes 5 for warm starts)",
            flags={"scheduler": ("--etcd-snapshot-count", "10000")},
        ),
        Variant(
            "scheduler-workers-64",
            "scheduler --workers 64 (2048 by default: goroutines every GC cycle scans)",
            flags={"scheduler": ("--workers", "64")},
        ),
        # Not by default: the launcher's stall watch reads daprd's info-level lines.
        Variant("log-warn", "daprd, scheduler and placement at --log-level warn", log_level="warn"),
        Variant(
            "gogc-200",
            "placement, scheduler and daprd with GOGC=200 (half as many collections, more heap)",
            go_env={"GOGC": "200"},
        ),
        Variant(
            "gomaxprocs-cores",
            f"placement, scheduler and daprd at Go's default GOMAXPROCS={CORES} (the launcher: 1)",
            go_env={"GOMAXPROCS": str(CORES)},
        ),
        Variant(
            "sqlite-full",
            "state store PRAGMA synchronous=FULL (SQLite's default: WAL synced on every commit)",
            connection_string="state.db?_pragma=synchronous(FULL)",
        ),
    )
}


def machine_busy_s() -> float:
    """CPU seconds all processes on the machine have used (/proc/stat: not idle, not iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    """One throughput load and what the whole machine (the other engineers too) used meanwhile."""

    result: Throughput
    machine_cores: float


# -- one load on a fresh stack -------------------------------------------------------------


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in this process's environment while the stack starts (its processes inherit)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def stack_and_worker(
    tmp: Path,
    variant: Variant,
    binaries: SidecarBinaries,
    tag: str,
    extra: dict[str, tuple[str, ...]],
) -> Iterator[tuple[EmbeddedStack, Callable[[int, Callable[[], None]], Load]]]:
    """A fresh stack with `variant`'s settings and a counting worker; yields a load function."""
    data_dir = tmp / f"{variant.name}-{tag}"
    flags = {
        role: (*variant.flags.get(role, ()), *extra.get(role, ()))
        for role in ("placement", "scheduler", "daprd")
    }
    stack = EmbeddedStack(
        data_dir=data_dir,
        binaries=binaries,
        components_dir=variant.components(tmp),
        log_level=variant.log_level,
        extra_flags=flags,
    )
    with _environment(variant.go_env):
        endpoint = stack.start()
    client = workflow_client(endpoint)
    counter = Counter()
    try:
        with wiring.research_worker(
            endpoint,
            llm_config=LLMConfig(),
            offline=True,
            registrar=counting(wiring.register, counter),
        ):
            # One run first: the corpus index and the worker's caches warm up outside the load.
            research_run(client, run_config(4, base_url=None), "warmup")

            def load(runs: int, scheduled: Callable[[], None]) -> Load:
                busy = machine_busy_s()
                result = throughput_load(client, data_dir, counter, runs, scheduled=scheduled)
                return Load(result, (machine_busy_s() - busy) / result.wall_s)

            yield stack, load
    finally:
        client.close()
        stack.stop()


# -- profilers -----------------------------------------------------------------------------


@dataclass
class Profiles:
    """Raw profiles of one load, each None when its profiler was unavailable or failed."""

    python: Path | None = None
    daprd: Path | None = None
    scheduler: Path | None = None
    goroutines: list[str] = field(default_factory=list)
    """daprd's goroutine dumps (pprof debug=1), one every half second of the profile."""
    problems: list[str] = field(default_factory=list)


def profile_during(
    out: Path, seconds: float, daprd_pprof: int, scheduler_pid: int
) -> tuple[Callable[[], None], Callable[[], Profiles]]:
    """(start, finish): start the three profilers at once; finish waits for them."""
    profiles = Profiles()
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    threads: list[threading.Thread] = []

    def fetch_pprof() -> None:
        url = f"http://127.0.0.1:{daprd_pprof}/debug/pprof/profile?seconds={int(seconds)}"
        try:
            with urllib.request.urlopen(url, timeout=seconds + 30) as response:
                target = out / "daprd.pprof"
                target.write_bytes(response.read())
                profiles.daprd = target
        except OSError as exc:
            profiles.problems.append(f"daprd pprof: {exc}")

    def sample_goroutines() -> None:
        # Off-CPU view of daprd: what its goroutines wait on (a CPU profile cannot show it).
        url = f"http://127.0.0.1:{daprd_pprof}/debug/pprof/goroutine?debug=1"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    profiles.goroutines.append(response.read().decode())
            except OSError as exc:
                profiles.problems.append(f"daprd goroutines: {exc}")
                return
            time.sleep(0.5)

    def profile(name: str, argv: list[str], target: Path) -> None:
        popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append((name, popen, target))

    def start() -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(py_spy).exists():
            # --gil: only samples where a thread holds the GIL, i.e. Python doing work; py-spy
            # counts a thread blocked in gRPC's C core (GIL released) as busy otherwise.
            target = out / "worker.txt"
            argv = [py_spy, "record", "--nonblocking", "--gil", "--nolineno", "-r", "100"]
            argv += ["-d", str(int(seconds)), "-f", "raw", "-o", str(target)]
            profile("py-spy", [*argv, "-p", str(os.getpid())], target)
        else:
            profiles.problems.append("py-spy not installed (pip install py-spy)")
        perf = shutil.which("perf")
        if perf:
            target = out / "scheduler.perf"
            argv = [perf, "record", "-F", "499", "-g", "-o", str(target), "-p", str(scheduler_pid)]
            profile("perf", [*argv, "--", "sleep", str(seconds)], target)
        else:
            profiles.problems.append("perf not installed (apt-get install linux-perf)")
        for job in (fetch_pprof, sample_goroutines):
            thread = threading.Thread(target=job, daemon=True)
            thread.start()
            threads.append(thread)

    def finish() -> Profiles:
        for thread in threads:
            thread.join()
        for name, proc, target in procs:
            _, err = proc.communicate(timeout=seconds + 60)
            if proc.returncode != 0 or not target.exists():
                profiles.problems.append(f"{name} exited {proc.returncode}: {err.decode()[-300:]}")
            elif name == "py-spy":
                profiles.python = target
            else:
                profiles.scheduler = target
        return profiles

    return start, finish


# -- reading profiles ----------------------------------------------------------------------


@dataclass
class Top:
    """A process's profile: share of samples per function (self) and per package."""

    process: str
    samples: float
    functions: list[tuple[str, float]]
    packages: list[tuple[str, float]]
    inclusive: list[tuple[str, float]] = field(default_factory=list)


def _ranked(counts: Mapping[str, float], total: float) -> list[tuple[str, float]]:
    return [(k, v / total) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]


def python_package(frame: str) -> str:
    """`fn (path/to/module.py)` -> a package: fte, grpc, dapr durabletask, google.protobuf..."""
    match = re.search(r"\((.*)\)$", frame)
    path = match.group(1) if match else frame
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    parts = Path(path).with_suffix("").parts
    if not parts:
        return "?"
    if parts[0] == "dapr" and "_durabletask" in parts:
        return "dapr durabletask (SDK)"
    if parts[0] in ("google", "dapr", "opentelemetry") and len(parts) > 1:
        return ".".join(parts[:2])
    if parts[0] in ("fte", "benchmarks"):
        return ".".join(parts[:2])
    return parts[0] if len(parts) > 1 else f"stdlib {parts[0]}"


def read_py_spy(path: Path) -> Top:
    """py-spy's raw format: one line per distinct stack, `frame;frame;... count`."""
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0.0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        packages[python_package(frames[-1])] += n
        # Our code, inclusive: the first frame of ours on the stack carries what it calls.
        for frame in frames:
            if python_package(frame).startswith(("fte.",)):
                inclusive[frame] += n
                break
    total = total or 1.0
    return Top(
        "worker + client (Python)",
        total,
        _ranked(own, total)[:TOP],
        _ranked(packages, total)[:TOP],
        _ranked(inclusive, total)[:TOP],
    )


def go_package(symbol: str) -> str:
    """`go.etcd.io/etcd/server/v3/etcdserver.(*X).f` -> `go.etcd.io/etcd/server/v3/etcdserver`."""
    symbol = symbol.strip()
    if symbol.startswith("[k]") or symbol.startswith("0x") or "[kernel" in symbol:
        return "kernel"
    head, _, tail = symbol.rpartition("/")
    name = tail.split(".", 1)[0]
    package = f"{head}/{name}" if head else name
    for prefix, label in (
        ("modernc.org/sqlite", "SQLite (modernc.org/sqlite)"),
        ("modernc.org/libc", "SQLite (modernc.org/libc)"),
        ("go.etcd.io/bbolt", "etcd bbolt"),
        ("go.etcd.io/etcd", "etcd"),
        ("google.golang.org/grpc", "gRPC"),
        ("google.golang.org/protobuf", "protobuf"),
        ("github.com/dapr/durabletask-go", "durabletask-go"),
        ("github.com/dapr/", "dapr"),
        ("github.com/diagridio/go-etcd-cron", "go-etcd-cron"),
        ("internal/runtime/syscall", "syscalls"),
        ("syscall", "syscalls"),
        ("runtime", "Go runtime (GC, scheduler)"),
        ("internal/runtime", "Go runtime (GC, scheduler)"),
    ):
        if package.startswith(prefix):
            return label
    return package.split("/")[0] if "." in package.split("/")[0] else f"std {package}"


def read_pprof(path: Path, process: str) -> Top:
    """`go tool pprof -top` of a CPU profile: flat share per function."""
    text = subprocess.run(
        ["go", "tool", "pprof", "-top", "-nodecount=100000", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    own: dict[str, float] = {}
    for line in text.splitlines():
        # flat  flat%  sum%  cum  cum%  name
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[1].endswith("%") and parts[4].endswith("%"):
            own[parts[5]] = own.get(parts[5], 0.0) + _seconds(parts[0])
    return _top_of(own, process)


def _seconds(text: str) -> float:
    for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def read_perf(path: Path, process: str) -> Top:
    """`perf report` of the scheduler: self share per symbol, kernel included."""
    text = subprocess.run(
        [
            "perf",
            "report",
            "-i",
            str(path),
            "--stdio",
            "--no-children",
            "--sort",
            "sym",
            "-g",
            "none",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    own: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)$", line)
        if match:
            symbol = match.group(3).strip()
            if match.group(2) == "k":
                symbol = f"[k] {symbol}"
            own[symbol] = own.get(symbol, 0.0) + float(match.group(1))
    return _top_of(own, process)


def _top_of(own: dict[str, float], process: str) -> Top:
    total = sum(own.values()) or 1.0
    packages: dict[str, float] = collections.defaultdict(float)
    for symbol, value in own.items():
        packages[go_package(symbol)] += value
    return Top(process, total, _ranked(own, total)[:TOP], _ranked(packages, total)[:TOP])


# What a daprd goroutine waits on, by the first frame found on its stack (innermost first).
WAITS = (
    ("_sqliteDefaultBusyCallback", "SQLite: sleeping for the write lock (busy handler)"),
    ("modernc.org/sqlite", "SQLite: running a statement"),
    ("database/sql.(*DB).conn", "database/sql: waiting for a connection"),
)


def goroutine_waits(dumps: list[str]) -> list[tuple[str, float]]:
    """Average goroutines per dump doing workflow work, by what they wait on.

    A dump (`debug=1`) lists `N @ addr...` then `#\t0x..\tfunc+0x..\tfile:line` frames.
    Goroutines outside actors, the engine and the state store (plumbing, timers) are left out.
    """
    counts: dict[str, float] = collections.defaultdict(float)
    for dump in dumps:
        for block in dump.split("\n\n"):
            lines = block.strip().splitlines()
            head = re.match(r"(\d+) @", lines[0]) if lines else None
            if head is None:
                continue
            frames = [
                ln.split("\t")[2].rsplit("+", 1)[0] for ln in lines[1:] if ln.count("\t") >= 3
            ]
            # Workflow work only: actors, the engine, the state store (not idle plumbing).
            if not any(
                m in f for f in frames for m in ("/pkg/actors/", "durabletask-go", "/state")
            ):
                continue
            key = next((label for mark, label in WAITS if any(mark in f for f in frames)), None)
            if key is None:
                # The innermost frame that is not the Go runtime's parking machinery.
                key = next(
                    (f for f in frames if not f.startswith(("runtime.", "sync.", "internal/"))),
                    frames[0] if frames else "?",
                )
            counts[key] += int(head.group(1))
    n = len(dumps) or 1
    return [(k, v / n) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])][:TOP]


def print_top(top: Top, cores: float | None) -> None:
    used = f", {cores:.2f} cores" if cores is not None else ""
    print(f"\n== {top.process}{used}: top functions (self) ==")
    for name, share in top.functions:
        print(f"  {share * 100:5.1f}%  {name[:150]}")
    print(f"-- {top.process}: by package --")
    for name, share in top.packages:
        print(f"  {share * 100:5.1f}%  {name}")
    if top.inclusive:
        print(f"-- {top.process}: our code, inclusive (first fte frame on the stack) --")
        for name, share in top.inclusive:
            print(f"  {share * 100:5.1f}%  {name[:150]}")


def verdict(
    cores: dict[str, float], machine: float, tops: dict[str, Top], waits: list[tuple[str, float]]
) -> str:
    """One line naming what limits throughput, from the CPU used and what daprd waits on."""
    ours = sum(cores.values())
    role, most = max(cores.items(), key=lambda kv: kv[1])
    top = tops.get(role)
    where = ""
    if top is not None and top.packages:
        name, share = top.packages[0]
        where = f" (its largest share: {name} {share * 100:.0f}%)"
    cpu = (
        f"{machine:.2f} of {CORES} cores busy on the machine, {ours:.2f} of them ours; "
        f"busiest: {role} {most:.2f} cores{where}"
    )
    sqlite_waiting = sum(mean for name, mean in waits if name.startswith("SQLite"))
    if machine >= 0.85 * CORES:
        return f"bottleneck: CPU, the machine's {CORES} cores are saturated: {cpu}"
    if sqlite_waiting >= 1.0:
        return (
            f"bottleneck: daprd's SQLite state store, {sqlite_waiting:.1f} goroutines on "
            f"average in it or waiting for its one write lock; CPU is not saturated: {cpu}"
        )
    return f"bottleneck: round-trip latency, not CPU and not SQLite's lock: {cpu}"


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="research runs at once")
    parser.add_argument(
        "--rounds", type=int, default=3, help="A/B rounds (each runs every variant)"
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="profile length, seconds")
    parser.add_argument(
        "--variants",
        default="baseline,sqlite-normal,gomaxprocs-cores",
        help="comma-separated, from: " + ", ".join(VARIANTS),
    )
    parser.add_argument("--no-profile", action="store_true", help="A/B only")
    parser.add_argument("--out", type=Path, default=None, help="keep raw profiles here")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    configure_logging()
    # The stacks' data (the scheduler's etcd WAL alone is 64 MB per segment) and, without
    # --out, the raw profiles live in a scratch directory removed at the end.
    with tempfile.TemporaryDirectory(prefix="fte-profile-", ignore_cleanup_errors=True) as scratch:
        return profile(args, names, Path(scratch))


def profile(args: argparse.Namespace, names: list[str], tmp: Path) -> int:
    """The profiled load, then the A/B rounds of `names`, with all data under `tmp`."""
    binaries = find_binaries()
    out = args.out or tmp / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {CORES} cores, load {os.getloadavg()[0]:.1f} at start; scratch {tmp}")

    if not args.no_profile:
        pprof_port = free_port()
        daprd_flags: dict[str, tuple[str, ...]] = {
            "daprd": ("--enable-profiling", "--profile-port", str(pprof_port))
        }
        with stack_and_worker(tmp, VARIANTS["baseline"], binaries, "profiled", daprd_flags) as (
            stack,
            load,
        ):
            record = read_record(stack.data_dir)
            assert record is not None
            start, finish = profile_during(out, args.seconds, pprof_port, record.pids["scheduler"])
            run = load(args.runs, start)
            profiles = finish()
        result = run.result
        print(
            f"\nprofiled load: {result.activities_per_s:.0f} activities/s, "
            f"{result.workflows_per_s:.0f} workflows/s over {result.wall_s:.1f} s "
            f"(profilers on for {args.seconds:.0f} s of it)"
        )
        if result.wall_s < args.seconds:
            print(f"note: the load ended before the profile; use --runs above {args.runs}")
        cores = {
            "worker + client (Python)" if "worker" in k else k: v
            for k, v in result.cpu_cores.items()
        }
        print(
            "CPU cores used under load: "
            + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
            + f"; whole machine {run.machine_cores:.2f}"
        )
        per_activity = {k: v * result.wall_s / result.activities * 1000 for k, v in cores.items()}
        cost = sum(per_activity.values())
        print(
            f"CPU ms per activity: {cost:.1f} ("
            + ", ".join(f"{k} {v:.1f}" for k, v in per_activity.items())
            + f"): at most {CORES * 1000 / cost:.0f} activities/s with all {CORES} cores ours"
        )
        tops: dict[str, Top] = {}
        if profiles.python:
            tops["worker + client (Python)"] = read_py_spy(profiles.python)
        if profiles.daprd:
            tops["daprd"] = read_pprof(profiles.daprd, "daprd (Go pprof; SQLite inside)")
        if profiles.scheduler:
            tops["scheduler"] = read_perf(profiles.scheduler, "scheduler (perf; etcd inside)")
        for role, top in tops.items():
            print_top(top, cores.get(role))
        if profiles.goroutines:
            dumps = len(profiles.goroutines)
            print(f"\n== daprd goroutines doing workflow work, mean of {dumps} dumps ==")
            for name, mean in goroutine_waits(profiles.goroutines):
                print(f"  {mean:6.1f}  {name[:150]}")
        for problem in profiles.problems:
            print(f"profiler problem: {problem}")
        waits = goroutine_waits(profiles.goroutines)
        print("\n" + verdict(cores, run.machine_cores, tops, waits))
        print(f"raw profiles: {out}")

    # -- A/B, alternating --
    rates: dict[str, list[float]] = {n: [] for n in names}
    # CPU milliseconds our processes spend per activity: steadier than activities/s while
    # other engineers load the machine, and what bounds activities/s once the cores are ours.
    costs: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            with stack_and_worker(tmp, VARIANTS[name], binaries, f"ab{r}", {}) as (_, load):
                run = load(args.runs, lambda: None)
            result = run.result
            rates[name].append(result.activities_per_s)
            total = sum(result.cpu_cores.values())
            costs[name].append(total * result.wall_s / result.activities * 1000)
            print(
                f"round {r + 1} {name:<22} {result.activities_per_s:6.1f} activities/s "
                f"{result.workflows_per_s:5.1f} workflows/s  cores: ours {total:.2f}, "
                f"machine {run.machine_cores:.2f}; {costs[name][-1]:.1f} CPU ms/activity",
                flush=True,
            )
    if rates:
        base = statistics.median(rates[names[0]])
        print(
            f"\nA/B over {args.rounds} round(s), {args.runs} runs each "
            f"(median; ratio to {names[0]}):"
        )
        for name in names:
            median = statistics.median(rates[name])
            spread = ", ".join(f"{x:.0f}" for x in rates[name])
            cost = statistics.median(costs[name])
            print(
                f"  {name:<22} {median:6.1f} activities/s  ×{median / base:.2f}  [{spread}]  "
                f"{cost:.1f} CPU ms/activity (at most {CORES * 1000 / cost:.0f}/s on "
                f"{CORES} free cores)  {VARIANTS[name].note}"
            )
    print(f"load {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
