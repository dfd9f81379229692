"""Running the pipeline: its steps as functions over files, the run profiles, the Pushgateway export.

The top layer below the CLI: ``steps`` calls every other layer; the KFP
components in ``components/`` and the local runner in ``pipelines/`` call ``steps``.
"""
