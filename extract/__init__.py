"""extract: turn a Hugging Face causal LM and text into an emostats study file.

Needs the ``extract`` extra (``pip install 'emostats[extract]'``: torch,
transformers, ...). Modules: :mod:`extract.model` (loading, the layer hook),
:mod:`extract.generate` (batched seeded sampling, steering pulse),
:mod:`extract.probes`, :mod:`extract.conversations`, :mod:`extract.sae`
(the SAE, TopK trainer) with :mod:`extract.sae_files` (SAELens and sparsify files:
:mod:`extract.sae_saelens`, :mod:`extract.sae_sparsify`, :mod:`extract.sae_common`),
:mod:`extract.steering`, :mod:`extract.pipeline` (the cached stages) with :mod:`extract.workdir`
(the work folder), :mod:`extract.assemble` (the study file) with :mod:`extract.storage`
(rounded values, portable paths), :mod:`extract.cli`;
the evaluation protocols: :mod:`extract.judge` (log-probability ratings, the calibration
gate) with :mod:`extract.number_tokens`, :mod:`extract.tool_calls` (the self-steering tool's
call format), :mod:`extract.protocols` (text evaluation, self-steering) and
:mod:`extract.evaluations` (the ``/evaluations`` group, ``python -m extract.evaluations``).
``/tokens`` ``probe_act``, ``/probes``, ``/moments`` and ``/conv_moments`` are computed by
:func:`emostats.study_from_activations`.
"""
