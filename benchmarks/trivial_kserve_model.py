"""The reference for the serving benchmark: a kserve.Model that does no work.

It answers V1 ``{"instances": [...]}`` with one constant prediction per
instance, so its latency is the floor that KServe's ModelServer (uvicorn,
FastAPI, JSON) puts under any model on this machine. ``bench_serving.py``
reports the cohortlm server's figures as ratios to this one.

    python benchmarks/trivial_kserve_model.py --http-port 9000
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main() -> None:
    """Parse the port and serve the constant model until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, required=True)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # kserve parses sys.argv when imported
    from kserve import Model, ModelServer

    class Constant(Model):
        def __init__(self) -> None:
            super().__init__("trivial")
            self.ready = True

        def predict(self, payload: Any, headers: Any = None) -> dict[str, Any]:
            return {"predictions": [{"p": 0.5} for _ in payload["instances"]]}

    ModelServer(http_port=args.http_port, enable_grpc=False, enable_latency_logging=False).start([Constant()])


if __name__ == "__main__":
    main()
