"""Network building blocks shared by UniHOPE, HFL-Net and the grasp classifier.

Attribute names follow the official code so that state_dict keys match the released checkpoints
(see docs/official-model.md §1.3-§1.11 and tests/official_keys/unihope_state_dict_keys.txt).
"""
