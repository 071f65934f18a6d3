"""``emostats validate STUDY``: print every problem; exit 0 only when there is none."""

import sys

from ._common import add_study_argument, study_paths


def register(sub):
    p = sub.add_parser("validate", help="check a study file against the format (exit 0 when valid, 2 when not)",
                       description="emostats validate STUDY: print every problem of the study file; "
                                   "exit 0 only when there is none.")
    add_study_argument(p)
    p.set_defaults(func=_main)


def _main(args):
    from ..errors import StudyError
    from ..io import open_study
    from ..validation import validate

    paths = study_paths(args)
    try:
        tree = open_study(paths, validate=False)
    except StudyError as exc:  # unreadable: the same one-line error as every other command
        print(f"emostats: error: {exc}", file=sys.stderr)
        return 2
    from .._results import RESULTS_MARKER

    problems = validate(tree)
    if problems and RESULTS_MARKER in tree.attrs:  # say what the file is before listing what it lacks
        problems.insert(0, f"{args.study[0]}: a results file of 'emostats run', not a study")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 2
    print("valid: no problems found")
    return 0
