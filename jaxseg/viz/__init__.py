"""Pictures a person looks at: sample panels, prediction overlays and training curves, drawn with PIL."""
