"""``fetal data``: list, verify and fetch the datasets described in ``data_manifests/``.

``fetal data verify`` is read-only and never imports TensorFlow or PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys

from fetal_lib.config.options import add_actions, add_data_dir, add_format


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_actions(
        subparsers,
        "data", help="list, verify and fetch datasets",
        description="Datasets: what they are (manifests), whether a data root holds them intact, how to get them.",
        dest="data_command",
    )

    p_list = sub.add_parser("list", help="datasets, their licence and how to obtain them",
                            description="List the datasets described in data_manifests/.")
    p_list.set_defaults(func=_list)

    p_verify = sub.add_parser(
        "verify", help="check a data root: complete / partial / missing, and every corrupt file",
        description=("Check each dataset under the data root against its manifest: status complete / partial "
                     "(n of N files of the full release) / missing, then one line '<path>: <problem>' per "
                     "wrong checksum, undecodable image or NIfTI, CSV with missing columns or non-positive "
                     "pixel sizes. Read-only. Exit status 1 if any file is corrupt; a partial dataset is "
                     "not an error."),
    )
    p_verify.add_argument("names", nargs="*", metavar="NAME", help="datasets to check (default: all)")
    add_data_dir(p_verify)
    add_format(p_verify, ("text", "json"), "text", "text (default: one line per dataset and per problem) or json (machine-readable)")
    p_verify.set_defaults(func=_verify)

    p_fetch = sub.add_parser(
        "fetch", help="download an open dataset (HC18, FETAL_PLANES_DB) into the data root",
        description=("Download an openly downloadable release (resumable), check its checksums and unpack it "
                     "atomically into <data root>/<dataset>. For registration-only datasets, print what to do "
                     "and exit with status 2."),
    )
    p_fetch.add_argument("name", metavar="NAME", help="dataset name (see `fetal data list`)")
    add_data_dir(p_fetch, "; the dataset goes to DIR/NAME")
    p_fetch.add_argument("--dest", dest="data_dir", help=argparse.SUPPRESS)  # old spelling of --data-dir
    p_fetch.add_argument("--base-url", default=None, metavar="URL",
                         help="override the download base URL (also $FETAL_FETCH_BASE_URL)")
    p_fetch.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per network operation (default 60)")
    p_fetch.set_defaults(func=_fetch)


def _list(args: argparse.Namespace) -> int:
    from fetal_lib.data.manifests import all_manifests  # deferred: loaded when the command runs

    for name, m in all_manifests().items():
        counts = ", ".join(f"{k} {v}" for k, v in m["counts"].items())
        print(f"{name}  [{m['access']['kind']}]  {m['title']}")
        print(f"    licence: {m['licence']}")
        print(f"    obtain:  {m['access'].get('url', '')}")
        print(f"    release: {counts}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from fetal_lib.data.verify import verify  # deferred: loaded when the command runs

    report = verify(args.data_dir, args.names or None, progress=True)
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format_text())
    return 0 if report.ok else 1


def _fetch(args: argparse.Namespace) -> int:
    from fetal_lib.data.fetch import FetchError, RegistrationRequired, fetch  # deferred: loaded when the command runs

    try:
        target = fetch(args.name, args.data_dir, base_url=args.base_url, progress=True, timeout=args.timeout)
    except RegistrationRequired as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except FetchError as exc:
        print(f"fetal: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name}: unpacked into {target}; run `fetal data verify {args.name}` to check it")
    return 0
