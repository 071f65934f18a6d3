"""extract: turn a Hugging Face causal LM and text into an emostats study file.

Needs the ``extract`` extra (``pip install 'emostats[extract]'``: torch,
transformers, ...). Modules: :mod:`extract.model` (loading, the layer hook),
:mod:`extract.generate` (batched seeded sampling, steering pulse),
:mod:`extract.probes`, :mod:`extract.conversations`, :mod:`extract.sae`
(SAELens format, TopK trainer), :mod:`extract.steering`,
:mod:`extract.pipeline` (the cached stages), :mod:`extract.assemble` (the study file), :mod:`extract.cli`;
the evaluation protocols: :mod:`extract.judge` (log-probability ratings, the calibration
gate), :mod:`extract.protocols` (text evaluation, self-steering) and
:mod:`extract.evaluations` (the ``/evaluations`` group, ``python -m extract.evaluations``).
``/tokens`` ``probe_act``, ``/probes``, ``/moments`` and ``/conv_moments`` are computed by
:func:`emostats.study_from_activations`.
"""
