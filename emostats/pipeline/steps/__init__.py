"""The steps of the pipeline, one topic per module; every module here is found by
:func:`emostats.pipeline.registry.load_steps` (no list to edit when a step is added).

Each step reads the study and earlier results through the analysis functions of
the layer below (imported inside the step, from their defining modules, so that
``import emostats.pipeline`` stays fast for the command line).
"""
