"""The ``materialize_online`` component (``components/materialize_online/component.py``)
on real kfp.dsl artifacts.
"""

from __future__ import annotations

import json

from components.materialize_online.component import materialize_online


def test_materialize_online_is_a_no_op_without_a_config(chain):
    assert json.loads(
        materialize_online.python_func(cohort=chain.cohort, study=chain.study, online_store_config="")
    ) == {"skipped": True}
