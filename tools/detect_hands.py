"""Hand boxes with MediaPipe Hands, written as a predict.py boxes file (JSON list of hand records).

Runs in the detector environment only (``make detector-venv``: mediapipe 0.10.21, numpy<2); imports nothing of
the project. Each hand's box is the tight box around its 21 detected landmarks (what the training crops are built
from), clipped to the image; ``side`` is the anatomical side, and ``score`` MediaPipe's handedness score.

    .venv-detector/bin/python tools/detect_hands.py --out boxes.json photo1.jpg photo2.jpg
    .venv-detector/bin/python tools/detect_hands.py --out boxes.json clip.mp4     # "image" = frame number
"""
import argparse
import json
import os
import sys

import cv2
import mediapipe as mp

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def hand_records(rgb, detector, image_key):
    """Records of the hands MediaPipe finds in one RGB frame."""
    height, width = rgb.shape[:2]
    result = detector.process(rgb)
    records = []
    for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
        xs = [min(max(p.x * width, 0.0), width - 1.0) for p in landmarks.landmark]
        ys = [min(max(p.y * height, 0.0), height - 1.0) for p in landmarks.landmark]
        if max(xs) <= min(xs) or max(ys) <= min(ys):
            continue
        label = handedness.classification[0]
        # MediaPipe labels handedness as seen in a mirrored (selfie) picture; photos are not mirrored.
        side = "right" if label.label == "Left" else "left"
        records.append({"image": image_key, "box": [min(xs), min(ys), max(xs), max(ys)], "side": side,
                        "score": float(label.score)})
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="image files, or one video file")
    parser.add_argument("--out", required=True, help="boxes JSON to write")
    parser.add_argument("--min_confidence", type=float, default=0.5)
    args = parser.parse_args(argv)
    records = []
    videos = [p for p in args.inputs if os.path.splitext(p)[1].lower() in VIDEO_SUFFIXES]
    if videos and len(args.inputs) > 1:
        sys.exit("detect_hands.py: give one video, or only images")
    hands = mp.solutions.hands.Hands(static_image_mode=not videos, max_num_hands=2,
                                     min_detection_confidence=args.min_confidence)
    if videos:
        capture = cv2.VideoCapture(videos[0])
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            records += hand_records(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), hands, str(index))
            index += 1
        capture.release()
    else:
        for path in args.inputs:
            frame = cv2.imread(path)
            if frame is None:
                sys.exit(f"detect_hands.py: cannot read image {path}")
            records += hand_records(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), hands, path)
    hands.close()
    with open(args.out, "w") as handle:
        json.dump(records, handle, indent=1)
    print(f"{len(records)} hand(s) written to {args.out}")


if __name__ == "__main__":
    main()
