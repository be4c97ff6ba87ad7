"""Metrics as pure functions on arrays (metres in; mm / px / fractions out as each function states).

Import from the submodules (this file imports nothing, so ``utils.metrics.hand`` stays free of torch/cv2):

- ``hand``: root alignment, MPJPE / MPVPE, similarity Procrustes, PA errors, the validation ``score``;
- ``pck``: PCK curves and AUC (0-50 mm official, 20-50 mm extra);
- ``fscore``: the vertex F-score (numba grid search, counts equal to a KD-tree's);
- ``classification``: grasp accuracy / precision / recall;
- ``object_pose``: object pose from voting maps (OpenCV PnP), REP, ADD, ADD-S, success rates.
"""
