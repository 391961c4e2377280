"""Dense-prediction examples on the CrossViT backbone (run from the repository root: python -m examples.NAME)."""
