"""Helpers shared by the subcommands: study arguments and output options."""

from pathlib import Path


def add_study_argument(parser, nargs=None, help_text="study file (NetCDF-4); several files concatenate along token"):
    parser.add_argument("study", nargs=nargs or "+", type=Path, metavar="STUDY", help=help_text)


def add_output_arguments(parser, default=None, help_text="output file"):
    parser.add_argument("-o", "--output", type=Path, default=default, help=help_text)
    parser.add_argument("--force", action="store_true", help="replace an existing output file")


def study_paths(args):
    paths = args.study if isinstance(args.study, list) else [args.study]
    return paths[0] if len(paths) == 1 else paths
