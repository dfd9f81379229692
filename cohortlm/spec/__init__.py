"""The study spec: what a cohort holds and what is predicted (the bottom layer; imports no other layer).

``study`` parses and checks a study YAML into a frozen :class:`~cohortlm.spec.study.StudySpec`;
``yamlsafe`` is the YAML loader that refuses what a spec must not contain; ``features``
says, in plain data, what the feature store holds for a spec.
"""
