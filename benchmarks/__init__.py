"""Speed benchmarks and the Keras / PyTorch twins of the model they compare against (not installed)."""
