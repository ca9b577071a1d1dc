"""Generation: the generator contract, one module per backend, the model registry."""
