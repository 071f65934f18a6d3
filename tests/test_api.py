"""The public API of SPEC.md section 3: every name resolves, and none is hidden by a submodule."""

import importlib
import pkgutil

import emostats as es

SPEC_NAMES = ["lag_persistence", "lag_profile", "trajectories", "fit_decay", "firing_persistence",
              "random_directions", "direction_persistence", "variance_matched", "emotion_pcs",
              "subspace_fraction", "cosine", "permutation_test", "spearman", "bh_fdr", "steering_effect",
              "mention_tests", "run", "open_study", "save", "validate", "example_study"]


def test_spec_names_are_public_functions():
    for name in SPEC_NAMES:
        assert callable(getattr(es, name)), name
        assert not isinstance(getattr(es, name), type(es)), f"es.{name} is a module"


def test_no_public_name_is_also_a_submodule():
    # importing a submodule sets the package attribute of that name to the module,
    # which would hide the lazily exported function of the same name
    modules = {m.name for m in pkgutil.iter_modules(es.__path__)}
    assert not (set(es._PUBLIC) & modules)


def test_public_names_survive_importing_every_submodule():
    for module in pkgutil.iter_modules(es.__path__):
        if module.name == "__main__":
            continue
        importlib.import_module(f"emostats.{module.name}")
    for name in es._PUBLIC:
        assert not isinstance(getattr(es, name), type(es)), f"es.{name} is a module"
