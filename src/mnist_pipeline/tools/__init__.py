"""Layer 4, tools: what runs around the pipeline. The report, plots, predictions, sweeps and
the dvc command line."""
