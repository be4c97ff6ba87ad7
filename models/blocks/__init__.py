"""Network building blocks shared by UniHOPE, HFL-Net and the grasp classifier.

Attribute names follow the official code so that state_dict keys match the released checkpoints
(see reference/official-model.md §1.3-§1.11 and official_model_state_dict_keys.txt).
"""
