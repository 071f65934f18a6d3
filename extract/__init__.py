"""extract: turn a Hugging Face causal LM and text into an emostats study file.

Needs the ``extract`` extra (``pip install 'emostats[extract]'``: torch,
transformers, ...). Modules: :mod:`extract.model` (loading, the layer hook),
:mod:`extract.generate` (batched seeded sampling, steering pulse),
:mod:`extract.probes`, :mod:`extract.conversations`, :mod:`extract.sae`
(SAELens format, TopK trainer), :mod:`extract.steering`,
:mod:`extract.pipeline` (stages and the study file), :mod:`extract.cli`.
The ``/moments`` group is computed by :func:`emostats.moments.moments`.
"""
