"""``python -m autograder release [--check]``."""

import argparse
import sys

from autograder import release


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="generate notebooks/ from solutions/ with nbgrader")
    rel.add_argument("--check", action="store_true", help="only report whether notebooks/ is in sync (exit 1 if not)")
    args = parser.parse_args(argv)
    if args.check:
        problems = release.check()
        for problem in problems:
            print(problem)
        print("notebooks/ is in sync with solutions/" if not problems else "run `make release` and commit notebooks/")
        return 1 if problems else 0
    for path in release.generate(release.RELEASE):
        print(f"wrote {path.relative_to(release.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
