"""Command implementations and analysis tools (FLOPs, info, ...)."""
