"""Traces of every request, collector batch and consumer message (see ``store`` and ``recorder``)."""
