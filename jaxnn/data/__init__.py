"""Data pipelines: MNIST through tensorflow-datasets (offline), and char-level text for the RNN labs."""
