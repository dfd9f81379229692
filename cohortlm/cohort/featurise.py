"""Featurisers: raw registry tables -> one row per patient (placeholder, filled below)."""

FEATURISERS: dict = {}
