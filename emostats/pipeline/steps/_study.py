"""What several step modules read from a study (not a step module: its name starts with ``_``)."""

__all__ = ["ACT", "SAE", "probe_act", "probe_vectors", "moments"]

#: the per-token probe activations
ACT = ("tokens/probe_act",)
#: the SAE features of each token and the feature table
SAE = ("tokens/sae_index", "features")


def probe_act(ctx):
    return ctx.study["tokens"]["probe_act"]


def probe_vectors(ctx):
    return ctx.study["probes"]["vector"] if ctx.has("probes/vector") else None


def moments(ctx):
    return ctx.group("moments") if ctx.has("moments") else None
