"""What MNIST is: the facts every layer of the pipeline shares, and nothing else."""

SIDE = 28  # every digit is SIDE x SIDE 8-bit gray pixels, a light digit on black
NUM_CLASSES = 10  # the digits 0-9, which are also the labels
SPLITS = ("train", "test")
EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}  # digits per split, canonical MNIST
# the training pixels' mean and standard deviation in [0, 1]: what normalizing removes
MEAN, STD = 0.1307, 0.3081
