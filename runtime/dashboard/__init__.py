"""The local dashboard, served by the flow's own server under ``/_bf/``: the flow's picture, its
latest requests and messages with their traces, its API, its data, resources and log lines.

Nothing here is imported unless the dashboard is on (``policy`` decides), so a served flow
without it pays nothing.
"""
