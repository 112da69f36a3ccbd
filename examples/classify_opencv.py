"""Classify MNIST-style digit images with an exported model in OpenCV's DNN module alone.

    python examples/classify_opencv.py models/onnx/lenet5.onnx digit.png [more.png ...]

Needs numpy and opencv-python-headless (5.1 tested), nothing else. Each image must already
be in MNIST's form, as the pipeline's data/images/test/<label>/*.png are: 28x28 gray, a
light digit on black (examples/classify_onnx.py shows how to bring any picture to it).
The model deskews and normalises inside.
"""

import sys

import cv2
import numpy as np

if __name__ == "__main__":
    net = cv2.dnn.readNetFromONNX(sys.argv[1])
    images = [cv2.imread(path, cv2.IMREAD_GRAYSCALE) for path in sys.argv[2:]]
    for path, image in zip(sys.argv[2:], images, strict=True):
        if image is None or image.shape != (28, 28):
            sys.exit(f"{path}: not a 28x28 image OpenCV can read")
    net.setInput(np.stack(images)[:, None])  # uint8, N x 1 x 28 x 28
    digits = net.forward().argmax(axis=1)  # N x 10 logits
    print("\n".join(f"{p}: {d}" for p, d in zip(sys.argv[2:], digits, strict=True)))
