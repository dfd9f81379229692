from components.materialize_online.component import materialize_online

__all__ = ["materialize_online"]
