"""BuildFlow's ``buildflow.config`` (it exported no names): bfctl reads a project's settings
from ``[tool.buildflow]`` in pyproject.toml and from its command-line flags instead of
buildflow.yaml, so this package only keeps BuildFlow's import path working."""
