"""``fetal doctor``: this machine, the precision ``auto`` picks here, the chapters' measured training
speed and predicted wall time. Run it first on a new machine (about two minutes)."""

from __future__ import annotations

import argparse
import json
import sys

from fetal_lib.config.options import add_data_dir, add_format, add_profile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="this machine: CPU flags, precision auto, measured training speed, predicted chapter times",
        description="Print the CPU model and the flags that matter to the frameworks, the precision `auto` resolves to, "
        "the training speed of each chapter's main networks measured here (a few batches each), and the predicted "
        "wall time of each chapter on this machine for a profile. Takes about two minutes; nothing is written.",
    )
    add_profile(parser, "profile whose epochs and sizes to predict for (default cpu)")
    add_data_dir(parser, "; image counts come from it")
    from fetal_lib.doctor import ESTIMATES  # light: the frameworks are imported by the estimates only

    parser.add_argument("--only", action="append", metavar="CHAPTER",
                        help=f"measure only these chapters ({', '.join(ESTIMATES)}); repeatable, or comma-separated")
    parser.add_argument("--skip-bench", action="store_true", help="machine and precision only: measure nothing")
    parser.add_argument("--save-reference", action="store_true",
                        help="after measuring, record each measured chapter's last run here (build/results/<chapter>/metrics.json, "
                        "same profile, real data) with the rates just measured in profiles/measured_times.json: the reference "
                        "other machines' predictions are scaled from (run it right after a `make book`)")
    add_format(parser, ("text", "json"), "text", "text (default: a report to read) or json (machine-readable)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from fetal_lib import doctor  # deferred: loaded when the command runs

    machine = doctor.machine_report()
    chapters = None
    if args.only:
        chapters = [c.strip() for item in args.only for c in item.split(",") if c.strip()]
        unknown = [c for c in chapters if c not in doctor.ESTIMATES]
        if unknown:
            print(f"fetal: error: --only: unknown chapter(s) {', '.join(unknown)}; measurable: {', '.join(doctor.ESTIMATES)}", file=sys.stderr)
            return 2
    measured = chapters or list(doctor.ESTIMATES)
    estimates = {} if args.skip_bench else doctor.chapter_estimates(
        args.profile, args.data_dir, measured, progress=lambda m: print(m, file=sys.stderr, flush=True), isolate=len(measured) > 1)
    if args.save_reference:
        written = doctor.save_reference(args.profile, machine, estimates)
        print(f"reference for profile {args.profile} saved to profiles/measured_times.json: "
              f"{', '.join(written) or 'no chapter (none has a real run of this profile in build/results newer than the saved one)'}"
              + (f"; kept the saved entries of {', '.join(kept)} (they record later runs)" if (kept := [c for c in estimates if c not in written and doctor.has_later_reference(args.profile, c)]) else ""),
              file=sys.stderr)
    if args.format == "json":
        print(json.dumps({"machine": machine, "profile": args.profile, "chapters": estimates}, indent=2))
    else:
        print(doctor.format_report(machine, estimates, args.profile))
    return 0
