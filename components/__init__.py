"""KFP components, one folder per step. Each is a thin wrapper over cohortlm.run.steps."""
