"""The model store: versioned, signed bundles per study, the champion, promotions and rollbacks."""
