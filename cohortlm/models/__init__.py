"""Models and their bundles: the regression baseline, the LLM scorer, the prompt text.

``bundle`` is the format (metadata, checksums, signatures, the :class:`Predictor`
protocol) and knows no model kind; ``loaders`` maps a bundle's ``kind`` to the
class that loads it (``baseline``, ``llm``). Built on ``cohort``.
"""
