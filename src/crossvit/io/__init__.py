"""Reading and writing: weights files in every layout, the release format and the hub, model cards, and the robust
image decoder shared by training, prediction and the server. Imports only crossvit.models."""
