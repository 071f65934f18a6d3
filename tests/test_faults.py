"""Faults (issue 12): signals during a save, a full disk, read-only and unreadable places, failed opens.

A signal during a save must stop the program within a second, leave no
temporary file and exit 130 (Ctrl-C, SIGINT) or 143 (SIGTERM). The signals
come at several moments of a save that takes seconds, to the process alone
and to its whole process group (what a terminal's Ctrl-C does). Tests that
need a small or read-only file system mount a tmpfs and are skipped with a
reason where mounting is not allowed.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import emostats as es

ROOT = Path(__file__).resolve().parent.parent
#: seconds a signalled command may take to stop (the brief: within a second; the margin is for a machine
#: shared by many processes). The work it interrupts would take far longer (the kernel: tens of seconds).
STOP_SECONDS = 3.0

# A CLI-like process that saves a tree large enough to take seconds (as emostats.cli.main does)
SAVER = textwrap.dedent("""
    import argparse, signal, sys
    import numpy as np, xarray as xr
    from emostats import save
    from emostats.cli import _call
    from emostats._atomic import sigterm_as_interrupt
    rng = np.random.default_rng(0)
    act = rng.standard_normal((int(sys.argv[2]), 64), dtype=np.float32)
    tree = xr.DataTree.from_dict({"/tokens": xr.Dataset({"probe_act": (("token", "probe"), act)})})
    # a background job started by a shell ignores SIGINT; a command in a terminal does not
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with sigterm_as_interrupt():
        sys.exit(_call(argparse.Namespace(func=lambda a: save(tree, sys.argv[1]))))
""")


def _temp_files(folder):
    return [p for p in os.listdir(folder) if p.endswith(".tmp")]


def _start_saver(folder, n_tokens=600_000):
    out = folder / "out.nc"
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(out), str(n_tokens)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 120
    while not _temp_files(folder):  # the save has started: its temporary file exists
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the save never started: {proc.stderr.read()}")
        time.sleep(0.01)
    return proc, out


@pytest.mark.parametrize("signum, delay, group", [
    (signal.SIGINT, 0.0, False), (signal.SIGINT, 0.4, False), (signal.SIGINT, 1.2, True),
    (signal.SIGTERM, 0.05, False), (signal.SIGTERM, 0.8, True),
])
def test_signal_during_save(tmp_path, signum, delay, group):
    proc, out = _start_saver(tmp_path)
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.fail("the save finished before the signal; make the tree larger")
    code, stopped, err = _stop(proc, signum, group)  # with group, the writer child gets it too
    assert code == (130 if signum == signal.SIGINT else 143), err
    assert stopped < STOP_SECONDS, f"took {stopped:.2f} s to stop"
    assert err.strip() == "emostats: interrupted", err
    assert _temp_files(tmp_path) == [] and not out.exists()


def test_uninterrupted_save_is_complete(tmp_path):
    proc, out = _start_saver(tmp_path, n_tokens=20_000)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    with xr.open_datatree(out) as tree:
        assert tree["tokens"].sizes["token"] == 20_000
    assert _temp_files(tmp_path) == []


def _mount(target, options):
    target.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                          text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    return target


@pytest.fixture
def small_disk(tmp_path):
    target = _mount(tmp_path / "small", "size=256k")
    yield target
    subprocess.run(["umount", str(target)], check=False)


@pytest.fixture
def read_only(tmp_path):
    target = _mount(tmp_path / "ro", "ro,size=64k")
    yield target
    subprocess.run(["umount", str(target)], check=False)


def test_disk_full_is_one_line_and_leaves_nothing(small_disk):
    tree = es.open_study(es.example_study())
    with pytest.raises(es.EmostatsError, match="the disk is full") as info:
        es.save(tree, small_disk / "copy.nc")
    assert "\n" not in str(info.value)
    assert os.listdir(small_disk) == []


def test_disk_full_from_the_command_line(small_disk):
    proc = subprocess.run([sys.executable, "-m", "emostats", "synth", "-o", str(small_disk / "s.nc"),
                           "--tokens", "20000", "--probes", "8", "--features", "50", "--k", "4", "--hidden", "16"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk is full" in lines[0], proc.stderr
    assert os.listdir(small_disk) == []


def test_read_only_folder_is_refused_before_the_work(read_only):
    with pytest.raises(es.EmostatsError, match="not writable .*read-only file system"):
        es.save(es.open_study(es.example_study()), read_only / "x.nc")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "emostats", "run", str(es.example_study()), "-o",
                           str(read_only / "r.nc"), "--no-progress"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only file system" in lines[0], proc.stderr  # no step ran before it
    assert time.monotonic() - t0 < 60


def test_unreadable_file_is_one_line(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the command as another user")
    study = tmp_path / "secret.nc"
    shutil.copyfile(es.example_study(), study)
    study.chmod(0)
    tmp_path.chmod(0o755)

    def as_nobody():
        os.setgid(65534)
        os.setuid(65534)

    try:
        proc = subprocess.run([sys.executable, "-m", "emostats", "info", str(study)], capture_output=True,
                              text=True, timeout=120, cwd="/", preexec_fn=as_nobody,
                              env=dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_CACHE_DIR=str(tmp_path / "numba")))
    except PermissionError:
        pytest.skip("the user 'nobody' cannot run this Python installation here")
    if "ModuleNotFoundError" in proc.stderr or "PermissionError" in proc.stderr and "secret" not in proc.stderr:
        pytest.skip("the user 'nobody' cannot read the installation here")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "permission denied" in lines[0], proc.stderr


FAILED_OPENS = textwrap.dedent("""
    import gzip, os, sys, numpy as np, xarray as xr
    import emostats as es
    from xarray.backends.file_manager import FILE_CACHE
    from tests.hostile.generator import base_study
    folder = sys.argv[1]
    good = os.path.join(folder, "good.nc")  # small: the point is the sequence of opens, not the size
    es.save(base_study(seed=2), good)
    raw = open(good, "rb").read()
    bad = {"gzip.nc": gzip.compress(raw), "truncated.nc": raw[: len(raw) // 3],
           "corrupt.nc": raw[:4096] + bytes(8192) + raw[4096 + 8192:]}
    for name, data in bad.items():
        open(os.path.join(folder, name), "wb").write(data)
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(os.path.join(folder, "classic.nc"), format="NETCDF3_CLASSIC")
    os.mkfifo(os.path.join(folder, "fifo.nc"))
    os.mkdir(os.path.join(folder, "dir.nc"))
    names = sorted(bad) + ["classic.nc", "fifo.nc", "dir.nc"]
    for round in range(3):
        for name in names:
            path = os.path.join(folder, name)
            try:
                es.open_study(path)
            except es.EmostatsError:
                pass
            try:
                es.open_study(path, chunks={"token": 1000})
            except es.EmostatsError:
                pass
        left = [k for k in FILE_CACHE.keys() if any(n in str(k) for n in names)]
        assert not left, left
        tree = es.open_study(good)
        es.run(tree, steps=["persistence", "summary"], progress=False, quiet=True, lag=5)
        es.run(good, steps=["persistence"], progress=False, quiet=True, lag=5)
    print("ok")
""")


def test_failed_opens_leave_no_handles_and_later_opens_work(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FAILED_OPENS, str(tmp_path)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert proc.stdout.strip().endswith("ok")


def test_save_of_a_lazy_study_in_a_child(tmp_path):
    # a dask-backed tree is written by the child process too (synchronous scheduler there)
    from tests.hostile.generator import base_study

    path = tmp_path / "a.nc"
    es.save(base_study(seed=4), path)
    with es.open_study(path, chunks={"token": 100}) as lazy:  # several chunks
        es.save(lazy, tmp_path / "b.nc")
    a, b = es.open_study(path), es.open_study(tmp_path / "b.nc")
    np.testing.assert_array_equal(a["tokens"]["probe_act"].values, b["tokens"]["probe_act"].values)


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    # root reads any file, so the refusal is simulated where the file is opened
    from emostats import _fileguard

    study = tmp_path / "s.nc"
    shutil.copyfile(es.example_study(), study)

    def denied(path, flags, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_fileguard.os, "open", denied)
    with pytest.raises(es.StudyError, match=r"s.nc: cannot be read \(permission denied\)"):
        es.open_study(study)


# ----------------------------------------------------------------------------- signals inside a kernel
#: a study whose lag-profile kernel runs for tens of seconds on one thread (segments longer than the lags)
BIG_STUDY = textwrap.dedent("""
    import sys, numpy as np, xarray as xr
    import emostats as es
    n, p, seg = 400_000, 64, 10_000
    act = np.random.default_rng(0).standard_normal((n, p), dtype=np.float32)
    ds = xr.Dataset({"probe_act": (("token", "probe"), act)},
                    coords={"conversation": ("token", (np.arange(n) // seg).astype(np.int32)),
                            "turn": ("token", np.zeros(n, np.int32)),
                            "position": ("token", (np.arange(n) % seg).astype(np.int32)),
                            "probe": [f"p{i}" for i in range(p)]})
    tree = xr.DataTree.from_dict({"/tokens": ds})
    tree.attrs["emostats_format"] = 1
    es.save(tree, sys.argv[1])
""")
KERNEL_RUN = ["--steps", "profile", "--max-lag", "9500", "--lag", "5", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def big_study(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.nc"
    subprocess.run([sys.executable, "-c", BIG_STUDY, str(path)], check=True, timeout=600, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return path


def _cpu_seconds(pid):
    """User + system CPU time of a process (from /proc), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(proc, signum, group):
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, signum)  # what Ctrl-C in a terminal does: every process of the group
    else:
        os.kill(proc.pid, signum)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("hung after the signal")
    return code, time.monotonic() - sent, proc.stderr.read()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the CPU time of a process")
@pytest.mark.parametrize("signum, cpu, group", [
    (signal.SIGINT, 2.5, False), (signal.SIGINT, 3.5, True), (signal.SIGINT, 5.0, False),
    (signal.SIGTERM, 3.0, False), (signal.SIGTERM, 6.0, True),
])
def test_signal_inside_a_kernel(big_study, tmp_path, signum, cpu, group):
    # The moments are CPU seconds of the command (imports and opening take about 2 s, the kernel about
    # 8 more on one thread: 400k tokens since the lane-blocked profile kernel), so they fall at the same
    # point of the work however busy the machine is.
    out = tmp_path / "r.nc"
    proc = subprocess.Popen([sys.executable, "-m", "emostats", "run", str(big_study), "-o", str(out), *KERNEL_RUN],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 300
    while (_cpu_seconds(proc.pid) or 0) < cpu:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before the signal: {proc.stderr.read()}")
        time.sleep(0.02)
    code, stopped, err = _stop(proc, signum, group)
    assert code == (130 if signum == signal.SIGINT else 143), err
    assert stopped < STOP_SECONDS, f"took {stopped:.2f} s to stop"
    assert err.strip() == "emostats: interrupted", err
    assert _temp_files(tmp_path) == [] and not out.exists()


def test_uninterrupted_kernel_run_ends(big_study, tmp_path):
    # the same command, not interrupted, gets to the end (so the signal tests did stop real work)
    out = tmp_path / "r.nc"
    proc = subprocess.run([sys.executable, "-m", "emostats", "run", str(big_study), "-o", str(out),
                           *KERNEL_RUN[:3], "200", *KERNEL_RUN[4:]], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    with xr.open_datatree(out) as tree:
        assert tree["profile"].sizes["lag"] == 201  # lags 0..200


# ----------------------------------------------------------------------------- report: no partial folder
@pytest.fixture(scope="module")
def small_results(tmp_path_factory):
    from tests.hostile.generator import base_study

    res = es.run(base_study(seed=5), steps=["persistence", "profile", "trajectories", "decay", "steering", "summary"],
                 lag=5, max_lag=20, progress=False, quiet=True)
    path = tmp_path_factory.mktemp("results") / "results.nc"
    es.save(res, path)
    return path


def test_report_on_a_full_disk_leaves_no_folder(small_disk, small_results):
    from emostats.report import build_report

    with pytest.raises(es.EmostatsError, match="the disk is full") as info:
        build_report(small_results, small_disk / "report", format="qmd", progress=False, quiet=True)
    assert "\n" not in str(info.value)
    assert os.listdir(small_disk) == []


def test_report_failing_midway_leaves_no_folder(small_results, tmp_path, monkeypatch):
    # a write that fails after some figures are written (ENOSPC from the qmd): the staged folder goes
    import errno

    from emostats.report import build_report, write_qmd

    def full(doc):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(write_qmd, "to_qmd", full)
    with pytest.raises(es.EmostatsError, match="the disk is full"):
        build_report(small_results, tmp_path / "report", format="qmd", progress=False, quiet=True)
    assert os.listdir(tmp_path) == []


def test_report_folder_appears_whole(small_results, tmp_path):
    from emostats.report import build_report

    written = build_report(small_results, tmp_path / "report", format="qmd", progress=False, quiet=True)
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    assert written["qmd"] == tmp_path / "report" / "report.qmd" and written["qmd"].exists()
    assert written["figures"] and all(p.parent == tmp_path / "report" and p.exists() for p in written["figures"])
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.startswith(".")]
    assert (tmp_path / "report").stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_report_into_a_read_only_folder_is_refused_before_the_work(read_only, small_results, monkeypatch):
    import emostats.report as report

    def never(*args, **kwargs):
        raise AssertionError("the results were loaded before the folder was checked")

    monkeypatch.setattr(report, "load_results", never)
    for target in (read_only / "report", read_only):  # a new folder in it, or the folder itself
        with pytest.raises(es.EmostatsError, match="not writable .*read-only file system"):
            report.build_report(small_results, target, format="qmd", progress=False, quiet=True)
    proc = subprocess.run([sys.executable, "-m", "emostats", "report", str(small_results), "-o",
                           str(read_only / "report"), "--format", "qmd", "--no-progress"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only file system" in lines[0], proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_report_leaves_no_folder(small_results, tmp_path, signum):
    target = tmp_path / "out" / "report"
    target.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "emostats", "report", str(small_results), "-o", str(target),
                             "--format", "qmd", "--no-progress"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 300
    while not any(p.name.startswith(".report.") for p in target.parent.iterdir()):  # the staged folder exists
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the report ended before the signal: {proc.stderr.read()}")
        time.sleep(0.01)
    time.sleep(0.3)
    code, stopped, err = _stop(proc, signum, group=False)
    assert code == (130 if signum == signal.SIGINT else 143), err
    assert stopped < STOP_SECONDS, f"took {stopped:.2f} s to stop"
    assert err.strip() == "emostats: interrupted", err
    assert os.listdir(target.parent) == []


def test_ctrl_c_in_a_terminal_restores_the_cursor(big_study, tmp_path):
    # with a progress bar on a terminal (which hides the cursor), Ctrl-C inside the kernel ends the bar first
    pty = pytest.importorskip("pty")
    import select

    out = tmp_path / "r.nc"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ["PYTHONPATH"] = str(ROOT)
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "emostats", "run", str(big_study), "-o", str(out),
                                  *[a for a in KERNEL_RUN if a != "--no-progress"]])
    seen, sent, deadline = b"", None, time.monotonic() + 300
    while time.monotonic() < deadline:
        if sent is None and b"profile" in seen and (_cpu_seconds(pid) or 0) >= 3.0:
            os.kill(pid, signal.SIGINT)
            sent = time.monotonic()
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert sent is not None, f"the run ended before the signal: {seen[-500:]!r}"
    assert os.waitstatus_to_exitcode(status) == 130, seen[-500:]
    assert time.monotonic() - sent < STOP_SECONDS + 1  # + reading the terminal's last output
    tail = seen[seen.rfind(b"\x1b[?25l"):]  # after the bar hid the cursor ...
    assert b"\x1b[?25h" in tail and tail.rstrip().endswith(b"emostats: interrupted"), tail[-300:]  # ... shown again
    assert _temp_files(tmp_path) == [] and not out.exists()
