"""Train and compare two small digit classifiers on MNIST."""
