"""Storage both sides of a sink share: what the targets create and the writers fill.

A target makes the table, folder or log on apply (``providers/``); a worker's sink writer
creates what is missing on start and appends to it (``runtime/``). Both must agree on the
SQL of a table, on how a file is made durable, on how DuckDB files are shared between
processes, and on the name of what stands behind a sink (``Engine``), so those live here,
below both. Nothing here does I/O at import: each module is imported by whoever uses it.
"""
