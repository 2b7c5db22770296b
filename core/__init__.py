"""The shared vocabulary of every layer: settings, errors, metrics, the turn plan and its events.

Everything above imports from here; this package imports none of the other layers.
"""
