"""Run the postbackd benchmarks and write docs/benchmarks.md: ``python -m bench.run --help``.

Every scenario starts real ``postbackd run`` processes on throw-away
directories and talks to them through their Unix sockets; HTTP goes only to
the benchmark's own receiver on 127.0.0.1. Every load loop stops after its
count or its time limit, whichever comes first.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench._delivery import run_delivery
from bench._ingest import run_ingest
from bench._latency import run_latency
from bench._logbuild import CONFIG_RECORDS
from bench._machine import REPORT_PATH, describe_machine, git_revision, load_average
from bench._profile import find_py_spy
from bench._receiver import MultiProcessReceiver
from bench._report import render_report, write_report
from bench._restart import run_restart
from bench._results import ScenarioResult

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPOSITORY / REPORT_PATH
NOTES = Path(__file__).resolve().parent / "notes.md"

SCENARIOS = ("ingest", "delivery", "latency", "restart", "memory")

# Sizes of a full run, sized to finish within 10 minutes on a 2-core machine.
FULL_SIZES = {
    "events": 1_000_000,
    "postbacks": 100_000,
    "plain_requests": 20_000,
    "capacity_seconds": 5.0,
    "latency_seconds": 20.0,
    "latency_events": 100_000,
    "restart_records": 10_000_000,
    "devices": 1_000_000,
}

# Sizes of --quick, which checks that every scenario runs, in well under a minute.
QUICK_SIZES = {
    "events": 2_000,
    "postbacks": 300,
    "plain_requests": 300,
    "capacity_seconds": 1.0,
    "latency_seconds": 2.0,
    "latency_events": 300,
    "restart_records": 6_000,
    "devices": 1_000,
}


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a whole number such as 100000") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected a number such as 20") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected more than 0")
    return value


def _scenarios(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"invalid scenario list {text!r}: expected names from {', '.join(SCENARIOS)}, separated by commas"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Measure postbackd against the limits of its own parts and write a Markdown report.",
    )

    sizes = parser.add_argument_group("sizes (defaults: a full run; --quick: a few seconds each)")
    sizes.add_argument("--events", type=_positive_int, help=f"native lines sent in the ingest run "
                       f"(full: {FULL_SIZES['events']:,})")
    sizes.add_argument("--postbacks", type=_positive_int, help=f"postbacks delivered in the delivery run, rounded up "
                       f"to a multiple of 3 (full: {FULL_SIZES['postbacks']:,})")
    sizes.add_argument("--plain-requests", type=_positive_int, help=f"requests of each plain httpx loop "
                       f"(full: {FULL_SIZES['plain_requests']:,})")
    sizes.add_argument("--capacity-seconds", type=_positive_float, help=f"length of the receiver's capacity check "
                       f"in seconds (full: {FULL_SIZES['capacity_seconds']:g})")
    sizes.add_argument("--latency-seconds", type=_positive_float, help=f"length of the latency run in seconds "
                       f"(full: {FULL_SIZES['latency_seconds']:g})")
    sizes.add_argument("--latency-events", type=_positive_int, help=f"maximum installs sent in the latency run "
                       f"(full: {FULL_SIZES['latency_events']:,})")
    sizes.add_argument("--latency-rate", type=_positive_float, help="postbacks/s of the latency run; default: half "
                       "the rate measured in the delivery run, which must then be selected too")
    sizes.add_argument("--restart-records", type=_positive_int, help=f"records of the log for the restart and "
                       f"memory runs (full: {FULL_SIZES['restart_records']:,})")
    sizes.add_argument("--devices", type=_positive_int, help=f"installed devices in that log "
                       f"(full: {FULL_SIZES['devices']:,})")

    parser.add_argument("--quick", action="store_true", help="use small sizes, to check that every scenario runs")
    parser.add_argument("--only", type=_scenarios, default=list(SCENARIOS), metavar="LIST",
                        help=f"scenarios to run, separated by commas: {','.join(SCENARIOS)} (default: all)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="PATH",
                        help="the Markdown report to write (default: docs/benchmarks.md)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile the daemon with py-spy during the ingest and delivery runs "
                             "(default: on when py-spy is installed, off with --quick)")
    parser.add_argument("--ingest-snapshot-every-records", type=_positive_int, default=None, metavar="N",
                        help="snapshot_every_records of the daemon in the ingest run (default: the daemon's "
                             "default); a large N shows the ingest rate without snapshots")
    parser.add_argument("--receiver-workers", type=_positive_int, default=2,
                        help="processes of the HTTP receiver (default: 2)")
    parser.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                        help="directory for logs and inputs (default: a new temporary directory, removed after)")
    return parser


def resolve_sizes(args: argparse.Namespace) -> dict[str, float]:
    """Return the sizes of this run: the options given, else the --quick or full defaults."""
    defaults = QUICK_SIZES if args.quick else FULL_SIZES
    return {name: getattr(args, name) if getattr(args, name) is not None else value
            for name, value in defaults.items()}


def _run_scenario(results: list[ScenarioResult], key: str, title: str,
                  body: Callable[[], ScenarioResult | list[ScenarioResult]]) -> None:
    """Run one scenario, timing it; a failure is reported on the page and the other scenarios still run."""
    load_before = load_average()
    started = time.monotonic()
    try:
        outcome = body()
        produced = outcome if isinstance(outcome, list) else [outcome]
    except Exception as exc:
        traceback.print_exc()
        failed = ScenarioResult(key, title)
        failed.error = f"{type(exc).__name__}: {exc}"
        produced = [failed]
    for number, result in enumerate(produced):
        # Results of one scenario share its time, which is shown once.
        result.seconds = time.monotonic() - started if number == 0 else None
        result.load = f"{load_before} and {load_average()}"
        results.append(result)
    print(f"bench: {title} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


# The sizes each scenario's targets depend on. A target is judged only when
# these are at least the full sizes, because the targets are set for those
# sizes: a smaller log replays faster, and fewer events leave less state.
SCENARIO_SIZES = {
    "ingest": ("events",),
    "delivery": ("postbacks",),
    "latency": ("latency_seconds",),
    "restart": ("restart_records", "devices"),
    "memory": ("restart_records", "devices"),
}


def smaller_sizes(key: str, sizes: dict[str, float]) -> list[str]:
    """Return the options of scenario ``key`` that are below their full size."""
    return [
        "--" + name.replace("_", "-") for name in SCENARIO_SIZES.get(key, ()) if sizes[name] < FULL_SIZES[name]
    ]


def check_options(args: argparse.Namespace, sizes: dict[str, float]) -> str | None:
    """Return what is wrong with a combination of options, None when nothing is."""
    selected = args.only
    if "latency" in selected and "delivery" not in selected and args.latency_rate is None:
        return "the latency run needs --latency-rate when the delivery run is not selected with --only"
    if "restart" in selected or "memory" in selected:
        needed = CONFIG_RECORDS + 3 * int(sizes["devices"]) + 1
        if sizes["restart_records"] < needed:
            return (
                f"--restart-records {int(sizes['restart_records'])} is too small for --devices "
                f"{int(sizes['devices'])}: give at least {needed} records, or fewer devices"
            )
    if args.profile and find_py_spy() is None:
        return "--profile needs py-spy: install it with `pip install py-spy`, or leave out --profile"
    return None


def _revision_text(at_start: str, at_end: str) -> str:
    if at_start == at_end:
        return at_start
    return f"{at_start} at the start, {at_end} at the end (the tree changed during the run)"


def run(args: argparse.Namespace, sizes: dict[str, float], argv: list[str]) -> int:
    """Run the selected scenarios and write the report; return the exit status (1 when a scenario failed)."""
    selected = args.only
    py_spy = find_py_spy() if args.profile or (args.profile is None and not args.quick) else None

    ingest_settings = ""
    if args.ingest_snapshot_every_records is not None:
        ingest_settings = f"snapshot_every_records = {args.ingest_snapshot_every_records}\n"
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="postbackd-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # Other work may commit to the tree while the benchmarks run, so the page names both ends.
    revision_at_start = git_revision(REPOSITORY)
    started = time.monotonic()
    results: list[ScenarioResult] = []
    try:
        if "ingest" in selected:
            _run_scenario(results, "ingest", "Ingest",
                          lambda: run_ingest(work_dir, int(sizes["events"]), py_spy, ingest_settings))
        if "delivery" in selected or "latency" in selected:
            with MultiProcessReceiver(args.receiver_workers) as receiver:
                max_rate = 2 * args.latency_rate if args.latency_rate else None
                if "delivery" in selected:
                    _run_scenario(results, "delivery", "Delivery", lambda: run_delivery(
                        work_dir, receiver, int(sizes["postbacks"]), int(sizes["plain_requests"]), sizes["capacity_seconds"],
                        py_spy))
                    max_rate = max_rate or results[-1].values.get("max_rate")
                if "latency" in selected:
                    _run_scenario(results, "latency", "Latency", lambda: run_latency(
                        work_dir, receiver, max_rate, sizes["latency_seconds"], int(sizes["latency_events"])))
        if "restart" in selected or "memory" in selected:
            _run_scenario(results, "restart", "Restart and memory", lambda: run_restart(
                work_dir, int(sizes["restart_records"]), int(sizes["devices"]),
                restart="restart" in selected, memory="memory" in selected))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)

    for result in results:
        smaller = smaller_sizes(result.key, sizes)
        if smaller:
            for target in result.targets:
                target.not_judged = f"{', '.join(smaller)} below the full size"
    text = render_report(
        command=shlex.join(["python", "-m", "bench.run", *argv]),
        date=date,
        machine=describe_machine(_revision_text(revision_at_start, git_revision(REPOSITORY))),
        results=results,
        total_seconds=time.monotonic() - started,
        notes=NOTES.read_text() if NOTES.exists() else "",
    )
    write_report(args.output, text)
    print(f"bench: wrote {args.output}", file=sys.stderr)
    return 1 if any(result.error for result in results) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = resolve_sizes(args)
    problem = check_options(args, sizes)
    if problem is not None:
        parser.error(problem)
    return run(args, sizes, argv)


if __name__ == "__main__":
    # SIGTERM (from timeout or kill) exits like Ctrl-C does, so that the
    # daemons are stopped and the temporary work directory is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
