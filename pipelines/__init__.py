"""Pipelines that wire the components together; compile to IR YAML with `cohortlm compile`."""
