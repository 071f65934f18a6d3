"""Run R at test time: one ``Rscript`` call evaluates a batch of cases.

Cases go to R as text lines ``field|field|...`` (numeric vectors comma
separated, ``NA`` for NaN); R prints one line per case of numbers formatted
with ``%.17g`` (``ERR`` where R stops with an error). Tests using this skip
with a reason when ``Rscript`` is not on the PATH.
"""

import math
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

RSCRIPT = shutil.which("Rscript")
needs_r = pytest.mark.skipif(RSCRIPT is None, reason="Rscript not found (install r-base-core); the "
                                                     "R-pinned values in tests/R/ still run")

#: R code shared by every script: read the cases, helpers to parse and print
PRELUDE = r"""
args <- commandArgs(trailingOnly = TRUE)
lines <- readLines(args[1])
num <- function(s) if (s == "") numeric(0) else as.numeric(strsplit(s, ",", fixed = TRUE)[[1]])
out <- function(...) {
  v <- unlist(list(...))
  cat(paste(ifelse(is.na(v) & !is.nan(v), "NA", sprintf("%.17g", v)), collapse = " "), "\n", sep = "")
}
ALT <- c("two-sided" = "two.sided", "greater" = "greater", "less" = "less")
"""


def vec(a):
    """A float vector as R reads it (NaN -> NA; 17 significant digits round-trip)."""
    return ",".join("NA" if math.isnan(v) else repr(float(v)) for v in np.asarray(a, dtype=float))


def run_r(body, lines, timeout=120):
    """Evaluate R ``body`` once per case line (the line's fields are in ``f``); return one
    list of floats per case (``None`` where R printed ``ERR``)."""
    script = PRELUDE + "for (line in lines) {\n f <- strsplit(line, '|', fixed = TRUE)[[1]]\n" \
        + "r <- tryCatch({\n" + body + "\nTRUE}, error = function(e) { cat('ERR\\n'); FALSE })\n}\n"
    with tempfile.TemporaryDirectory() as tmp:
        src, data = f"{tmp}/s.R", f"{tmp}/cases.txt"
        with open(src, "w") as fh:
            fh.write(script)
        with open(data, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        res = subprocess.run([RSCRIPT, "--vanilla", src, data], capture_output=True, text=True,
                             timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"Rscript failed: {res.stderr[-2000:]}")
    rows = res.stdout.splitlines()
    if len(rows) != len(lines):
        raise RuntimeError(f"Rscript printed {len(rows)} lines for {len(lines)} cases: {res.stderr[-2000:]}")
    return [None if r.strip() == "ERR" else [math.nan if v == "NA" else float(v) for v in r.split()]
            for r in rows]

#: the issue's bar against R: p-values and estimates/intervals to 1e-9, adjusted p-values to 1e-12
RTOL_P = 1e-9
RTOL_EST = 1e-9
RTOL_ADJ = 1e-12
#: absolute floor: values that are 0 in exact arithmetic come out as +-1e-16 in either program
#: (and R takes some upper tails as 1 - lower tail, which has absolute error ~1e-16)
ATOL = 1e-14
