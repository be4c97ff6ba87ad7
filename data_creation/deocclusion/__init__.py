"""The generative de-occluder (HandRefiner-style): per grasping training frame, inpaint the held object away
under a GT hand-depth ControlNet condition, at several control strengths, and keep the best-scoring image.

Modules: :mod:`.conditions` (fused crop, GT hand depth, inpainting mask), :mod:`.pipeline` (loading and calling
the diffusers pipeline), :mod:`.selection` (scorers and the choice of strength), :mod:`.sheets` (visual check),
:mod:`.run` (the resumable, shardable loop writing crops + the pair index). CLI: ``data_creation/deocclusion/deocclude.py``.
"""
