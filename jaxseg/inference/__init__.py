"""From a trained model to masks: logits of whole photos, sliding windows, scales and flips (logits),
prediction from a checkpoint or a keras-hub preset (predict), and export for serving (export)."""
