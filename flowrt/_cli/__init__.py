"""The ``flowrt`` command's parts (``flowrt.cli`` is its face)."""
