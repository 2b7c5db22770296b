"""The gateway's benchmark against driving OpenCode directly: `python -m bench` (see run.py)."""
