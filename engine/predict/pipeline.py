"""One image in, its placed hands out: crops -> network -> 2D joint decoding -> camera placement."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.hand_object_sample import SampleSettings
from engine.predict.crops import build_hand_crop
from engine.predict.hand_boxes import HandBox
from engine.predict import PredictInputError
from engine.predict.network import JOINTS_3D_KEY, VERTS_3D_KEY, joints_2d_crop_px, model_input_keys
from engine.predict.placement import PlacedHand, place_hand


@dataclass
class HandPipeline:
    """``predictor``: a :class:`engine.predict.network.TorchPredictor` or ``OnnxPredictor``; ``settings``: the
    experiment's test-time crop settings; ``box_normalised``: ``cfg.data.bbox_hand_normalize_2d_joint``."""

    predictor: object
    settings: SampleSettings
    box_normalised: bool

    def __call__(self, image: np.ndarray, hands: list[HandBox], intrinsics: np.ndarray,
                 where: str = "image") -> list[PlacedHand]:
        """Reconstruct ``hands`` of ``image`` (H, W, 3) uint8 RGB seen with ``intrinsics`` (3, 3) px, in one batch."""
        if not hands:
            return []
        crops = [build_hand_crop(image, hand, self.settings, where) for hand in hands]
        inputs = {key: np.stack([crop.inputs[key] for crop in crops]) for key in model_input_keys(self.settings)}
        outputs = self.predictor(inputs)
        if JOINTS_3D_KEY not in outputs or VERTS_3D_KEY not in outputs:
            raise PredictInputError(f"this model predicts no hand mesh (outputs {sorted(outputs)}); predict.py needs "
                                    f"{JOINTS_3D_KEY} and {VERTS_3D_KEY} (a grasp classifier alone cannot be used)")
        joints_2d = joints_2d_crop_px(outputs, inputs["bbox_hand"], self.settings.res, self.box_normalised)
        return [place_hand(hand, crop, outputs, row, None if joints_2d is None else joints_2d[row], intrinsics)
                for row, (hand, crop) in enumerate(zip(hands, crops))]
