"""The architecture: configs, layers, the encoders and their fusions, the model, the registry of named models and
the paper's tables. Imports nothing else of crossvit (torch and timm only)."""
