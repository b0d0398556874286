"""Training: state and optimizer (`state`), jitted steps (`steps`), loss and metrics (`metrics`), checkpoints,
the metrics writer, the shared `Run`, the training loop (`loop.train_and_evaluate`) and checkpoint evaluation
(`loop.evaluate`)."""
