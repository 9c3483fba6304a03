"""The benchmarks, one after the other: `venv/bin/python -m bench` (or `bin/bench`); one of
them by name: `python -m bench deploy`. `python -m bench ci` (CI's jobs, about 25 minutes) and
`python -m bench restore` (a whole-host loss with a 2 GB database, about 20 minutes) run only
when named.

Prints each table with its summary line, then one last line with the summaries."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import ci, db, deploy, edge, plan, restore
from testsupport.tools import MissingToolError

# Long (CI's jobs; a restore of a 2 GB database): run only when asked for by name.
ONLY_WHEN_NAMED = ("ci", "restore")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("only", nargs="*", metavar="NAME",
                        help=f"run only these: plan, edge, database, deploy, {', '.join(ONLY_WHEN_NAMED)}")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the edge figures to FILE as JSON")
    args = parser.parse_args(argv)
    unknown = set(args.only) - {"plan", "edge", "database", "deploy", *ONLY_WHEN_NAMED}
    if unknown:
        parser.error(f"unknown benchmark {sorted(unknown)}")
    runs = 1 if args.quick else None
    summaries = []
    for title, go in (
        ("plan", lambda: plan.run(runs or 5)),
        ("edge", lambda: _edge(runs or 5, 2 if args.quick else 8, args.json)),
        ("database", lambda: db.run(runs or 3, 5 if args.quick else 20, 5 if args.quick else 50, 16)),
        ("deploy", deploy.run),
        ("ci", ci.run),
        ("restore", lambda: restore.run(*(restore.QUICK if args.quick else restore.FULL))),
    ):
        if (args.only and title not in args.only) or (title in ONLY_WHEN_NAMED and title not in args.only):
            continue
        print(f"== {title}")
        try:
            text, summary = go()
        except MissingToolError as exc:
            # The other benchmarks still run; the line says what to install.
            text, summary = str(exc), f"{title}: not run ({exc.what} missing)"
        print(text)
        print(summary, flush=True)
        print()
        summaries.append(summary)
    print(" | ".join(summaries))
    return 0


def _edge(runs: int, seconds: int, json_path: Path | None) -> tuple[str, str]:
    text, summary, figures = edge.measure(runs, seconds, 32)
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
        text += f"\nfigures written to {json_path}"
    return text, summary


if __name__ == "__main__":
    sys.exit(main())
