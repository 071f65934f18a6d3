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


def test_every_public_name_resolves_to_its_defining_module():
    for name, module in es._PUBLIC.items():
        value = getattr(es, name)
        defined_in = importlib.import_module(f"emostats.{module}")
        assert getattr(defined_in, name) is value, name
    for name in es.__all__:
        assert getattr(es, name) is not None, name


def test_type_checking_block_mirrors_the_public_map():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(es.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") ==
                 "TYPE_CHECKING")
    eager = {alias.asname or alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert eager == es._PUBLIC


def test_run_signature_defaults_are_the_registry_defaults():
    import inspect

    from emostats.pipeline import all_params
    from emostats.pipeline.engine import run

    params = all_params()
    signature = {k: v.default for k, v in inspect.signature(run).parameters.items()
                 if v.default is not inspect.Parameter.empty and k in params}
    # the original steps' parameters are keywords of es.run; parameters of steps added later go through **params
    assert {"lag", "max_lag", "seed", "n_boot", "n_matched", "alpha", "threads"} <= set(signature) <= set(params)
    assert inspect.signature(run).parameters["params"].kind is inspect.Parameter.VAR_KEYWORD
    for key, default in signature.items():
        assert default == params[key].default, key


def test_defaults_module_is_the_one_source():
    from emostats import defaults as D
    from emostats.pipeline import all_params

    p = all_params()
    assert (p["lag"].default, p["max_lag"].default, p["n_matched"].default, p["n_boot"].default) == (
        D.LAG, D.MAX_LAG, D.N_MATCHED, D.N_BOOT)
    assert p["n_perm"].default == D.N_PERM and p["alpha"].default == D.ALPHA
