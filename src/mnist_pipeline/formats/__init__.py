"""Layer 2, formats: the files both sides of the pipeline read and write. PNG digits, the
image folders' manifest, and exported ONNX models. No torch."""
