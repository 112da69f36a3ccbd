"""Layer 3, model side: the networks, the image-folder dataset, training, evaluation and
export. Imports torch; never reaches the data side's downloaders."""
