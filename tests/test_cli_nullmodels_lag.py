"""``emostats nullmodels`` takes its default ``--lag`` from the study: the only lag of ``/moments`` (issue 11)."""

import pytest
import xarray as xr

import emostats as es
from emostats import defaults as D
from emostats.cli import main
from emostats.cli.nullmodels import moments_lag

OPTIONS = ["--n-random", "20", "--n-candidates", "60", "--n-matched", "5", "--no-progress", "-q"]


def _study(folder, lags):
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=800, n_probes=4, n_features=30, k=3, hidden=24, n_offsets=11,
                               n_steer_samples=4, n_baseline=4, lags=lags, turn_length=(30, 90), seed=2,
                               random_directions=3)
    path = folder / f"study_{'_'.join(map(str, lags))}.nc"
    es.save(tree, path)
    return path


@pytest.fixture(scope="module")
def one_lag(tmp_path_factory):
    return _study(tmp_path_factory.mktemp("lag"), (7,))


def test_default_lag_is_the_only_lag_of_the_moments(one_lag, tmp_path):
    out = tmp_path / "n.nc"
    assert main(["nullmodels", str(one_lag), "-o", str(out), *OPTIONS]) == 0
    with xr.open_datatree(out) as res:
        assert res.attrs["param_lag"] == 7
        assert res["random_directions"].attrs["lag"] == 7
        r = res["persistence"]["r"].values
    # the probes' persistence is the lag-7 one, computed independently here
    study = es.open_study(one_lag)
    want = es.lag_persistence(study["tokens"]["probe_act"], lag=7)["r"].values
    assert r == pytest.approx(want, rel=1e-12)


def test_explicit_lag_wins(one_lag, tmp_path, capsys):
    out = tmp_path / "n.nc"
    code = main(["nullmodels", str(one_lag), "-o", str(out), "--lag", "3", *OPTIONS])
    err = capsys.readouterr().err.strip().splitlines()
    if code == 0:
        with xr.open_datatree(out) as res:
            assert res.attrs["param_lag"] == 3
    else:  # the moments hold lag 7 only: one line naming the lag
        assert code == 2 and len(err) == 1 and "lag" in err[0], err


def test_moments_lag_reads_only_a_single_lag(one_lag, tmp_path):
    assert moments_lag(one_lag) == 7
    assert moments_lag([one_lag, one_lag]) == 7
    assert moments_lag(_study(tmp_path, (3, 9))) is None
    assert moments_lag(tmp_path / "missing.nc") is None  # left to the engine's one-line error
    plain = tmp_path / "plain.nc"
    es.save(xr.DataTree.from_dict({"/tokens": es.open_study(one_lag)["tokens"].to_dataset(inherit=False)}), plain)
    assert moments_lag(plain) is None


def test_help_names_the_default():
    from emostats.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["nullmodels"]
    action = next(a for a in sub._actions if a.dest == "lag")
    assert action.default is None and "only lag of /moments" in action.help and str(D.LAG) in action.help
