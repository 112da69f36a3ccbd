"""Layer 1, core: what every other layer may use. Errors, atomic writes, the facts of MNIST,
params, and the stages' entry point. No torch, no network."""
