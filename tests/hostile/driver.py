"""Run emostats commands on many studies in ONE long-lived process, as a user's notebook would.

``python -m tests.hostile.driver JOBS.json RESULTS.jsonl`` reads a list of
``[name, command, argv]`` and, for each, calls ``emostats.cli.main(argv)`` with
stdout and stderr redirected to files, recording the exit code, both outputs,
whether a traceback escaped and whether the command hung (SIGALRM after
``HANG_SECONDS``). A result line is written before the next job starts, so a
segfault names the job that caused it (the last one without a result).
"""

import json
import os
import signal
import sys
import tempfile
import traceback

HANG_SECONDS = 90


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_one(argv):
    from emostats.cli import main

    out = tempfile.TemporaryFile(mode="w+b")
    err = tempfile.TemporaryFile(mode="w+b")
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    code, tb, hang = None, None, False
    signal.alarm(HANG_SECONDS)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except Hang:
        hang = True
    except BaseException:  # noqa: BLE001 - a traceback is what we look for
        tb = traceback.format_exc()
    finally:
        signal.alarm(0)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    out.seek(0)
    err.seek(0)
    return {"code": code, "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"), "traceback": tb, "hang": hang}


def main():
    jobs = json.loads(open(sys.argv[1]).read())
    signal.signal(signal.SIGALRM, _alarm)
    with open(sys.argv[2], "a") as fh:
        for name, command, argv in jobs:
            result = run_one(argv)
            result.update(name=name, command=command)
            fh.write(json.dumps(result) + "\n")
            fh.flush()


if __name__ == "__main__":
    main()
