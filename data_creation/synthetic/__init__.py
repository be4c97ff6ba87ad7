"""Synthetic DexYCB-format data: grasps (:mod:`.grasp`), sequence plans (:mod:`.scene`), cameras and appearance
(:mod:`.views`), rendering + writing (:mod:`.sequence_writer`), exact de-occluded pairs (:mod:`.pairs`) and the
overlay sheet (:mod:`.sheet`). CLI: ``python -m data_creation.synthetic.make_synthetic``."""
