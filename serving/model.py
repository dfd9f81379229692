"""The KServe model: a promoted cohortlm bundle behind the V1 and V2 inference protocols.

V1 request and response (``POST /v1/models/<name>:predict``)::

    {"instances": [{"age": 61, "sex": "female", ...}, {"patient_id": "P000123"}]}

    {"predictions": [{"das28_esr_high": 0.081, ...}, ...],     # probability per endpoint
     "decisions":   [{"das28_esr_high": false, ...}, ...],     # probability >= threshold
     "thresholds":  {"das28_esr_high": 0.31, ...},
     "threshold_source": "validation",    # "default": no thresholds.json (0.5); "mixed": 0.5 where absent
     "model_name": "ra_iorra", "model_version": "3f2a9c1d0b7e", "model_kind": "baseline"}

``predictions[i][endpoint]`` is the probability, as the serving contract says;
the decisions and the version are extra keys beside it. An instance holding
only the patient id is filled from the feature store.

V2 (``POST /v2/models/<name>/infer``): one input tensor per feature, named like
the feature, shape ``[n]`` or ``[n, 1]`` (numbers as FP64/FP32/INT*, binary as
BOOL or 0/1, categorical as BYTES with "" for missing); or only a ``patient_id``
BYTES tensor. Outputs: one FP64 tensor per endpoint (probabilities) and one BOOL
tensor ``<endpoint>_decision``; ``model_version`` is the bundle version. Both
protocols' outputs and the V2 metadata come from one :class:`serving.outputs.OutputSchema`.

A request that breaks a rule of the spec gets 400 naming the field and the rule
(:mod:`serving.validation`), and never reaches the model.

Readiness comes from :meth:`CohortModel.load`: the bundle's manifest verified,
the model loaded, and a prediction on a synthetic row built from the spec
returned finite probabilities for every endpoint. When the bundle path is the
store's ``champion`` pointer, a watcher thread reloads on a new champion (or on
SIGHUP), and swaps only after the new version passed the same checks; the
running version keeps answering until then, and keeps answering if the new
one fails.

Load and unload (the V2 model repository routes, REST and gRPC, with
``--enable-model-control``) move the model through a small state machine,
:data:`STATES`: ``loaded`` -> ``unloading`` -> ``unloaded`` -> ``loading`` ->
``loaded`` (or ``failed``, when the bundle read from disk again is refused).
The model stays registered throughout: unloaded, it answers 503 (not 404) and
readiness is false; load reads, verifies and self-checks the bundle from disk
again before it serves. One transition at a time (a lock shared with the
champion watcher, which never loads anything into an unloaded model).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.protocol.infer_type import InferRequest, InferResponse

from cohortlm.contracts import MANIFEST_FILE, THRESHOLDS_FILE
from cohortlm.errors import CohortlmError, DataError, SpecError
from cohortlm.models.bundle import Predictor, verify_bundle_signature
from cohortlm.models.loaders import load_bundle
from cohortlm.models.model_card import MODEL_CARD_JSON, read_model_card
from cohortlm.store.registry import verify_manifest
from serving.fastpath import compile_baseline
from serving.metrics import MODEL_INFO, PREDICTED_PROBABILITY
from serving.outputs import OutputSchema
from serving.rest import SafeInferenceError, SafeInvalidInput
from serving.validation import Columns, FeatureLookup, FeatureStoreError, RequestError, RequestSchema

log = logging.getLogger("cohortlm.serving")

DEFAULT_THRESHOLD = 0.5
#: The states of a served model (module docstring): what the repository index reports.
LOADING, LOADED, UNLOADING, UNLOADED, FAILED = "loading", "loaded", "unloading", "unloaded", "failed"
STATES = (LOADING, LOADED, UNLOADING, UNLOADED, FAILED)


@dataclass(frozen=True)
class ServedBundle:
    """A loaded, verified and self-checked bundle: everything one request needs, swapped as one."""

    path: Path
    predictor: Predictor
    schema: RequestSchema
    thresholds: dict[str, float]
    threshold_source: str
    version: str
    kind: str
    endpoints: tuple[str, ...]
    observers: tuple[Any, ...]  # one histogram child per endpoint, in endpoint order
    outputs: OutputSchema  # what V1, V2 (REST and gRPC) and the metadata answer, from the spec
    card: dict[str, Any] | None = None  # the bundle's model card (model_card.json), when it has one


def _read_thresholds(folder: Path, endpoints: list[str]) -> tuple[dict[str, float], str]:
    path = folder / THRESHOLDS_FILE
    if not path.is_file():
        return dict.fromkeys(endpoints, DEFAULT_THRESHOLD), "default"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError
        values = {str(k): float(v) for k, v in raw.items()}
    except (ValueError, TypeError):
        raise SpecError(f"{path} must map endpoint names to thresholds between 0 and 1") from None
    unknown = sorted(set(values) - set(endpoints))
    if unknown:
        raise SpecError(f"{path} names endpoint(s) the model does not predict: {', '.join(unknown)}")
    bad = sorted(k for k, v in values.items() if not 0.0 <= v <= 1.0)
    if bad:
        raise SpecError(f"{path}: threshold of {', '.join(bad)} must lie between 0 and 1")
    missing = [e for e in endpoints if e not in values]
    if missing:
        # An endpoint without a validated threshold (e.g. one class only in validation) keeps 0.5;
        # the response says so through threshold_source.
        log.warning("%s has no threshold for %s; using %.1f", path, ", ".join(missing), DEFAULT_THRESHOLD)
        return {e: values.get(e, DEFAULT_THRESHOLD) for e in endpoints}, "mixed"
    return {e: values[e] for e in endpoints}, "validation"


def _read_card(folder: Path) -> dict[str, Any] | None:
    """The bundle's model card (checked with the manifest like every file), or None without one."""
    try:
        return read_model_card(folder)
    except ValueError:  # JSONDecodeError included
        raise SpecError(f"{folder}/{MODEL_CARD_JSON} is no JSON object; promote the bundle again") from None


def load_served_bundle(
    path: str | Path,
    *,
    require_manifest: bool = True,
    max_batch: int = 1024,
    fast: bool = True,
    verify_key: str | Path | None = None,
) -> ServedBundle:
    """Verify, load and self-check a bundle; raise rather than serve anything doubtful.

    Args:
        path: the bundle folder, or a ``champion`` pointer to one.
        require_manifest: refuse a bundle without ``MANIFEST.json`` (unpromoted); on by default.
        max_batch: the most instances one request may carry.
        fast: use the numpy fast path for a baseline (see :mod:`serving.fastpath`).
        verify_key: a public key (PEM); when given, the bundle must carry a signature made
            with its private key at promotion, over every file and the manifest.

    Raises:
        BundleIntegrityError: the bundle changed after promotion (or was never promoted),
            or its signature is missing or does not verify.
        SpecError, UsageError: the bundle is not loadable.
        DataError: the self-check failed.
    """
    folder = Path(os.path.realpath(path))
    if require_manifest or (folder / MANIFEST_FILE).exists():
        verify_manifest(folder)
    if verify_key is not None:
        verify_bundle_signature(folder, verify_key)
    # The numpy twin of the baseline is used only if it matches scikit-learn to 1e-9.
    predictor = compile_baseline(load_bundle(folder)) if fast else load_bundle(folder)
    spec = predictor.spec
    schema = RequestSchema(spec, max_batch=max_batch)
    thresholds, source = _read_thresholds(folder, spec.endpoint_names)
    rows = schema.rows_from_instances([schema.example_row()])
    try:
        proba = predictor.predict_proba(rows)
    except Exception as exc:
        raise DataError(
            f"self-check failed: bundle {folder} could not predict a synthetic row ({type(exc).__name__})"
        ) from None
    if list(proba.columns) != spec.endpoint_names or len(proba) != 1:
        raise DataError(f"self-check failed: bundle {folder} did not return one probability per endpoint")
    values = proba.to_numpy(dtype=float)
    if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()):
        raise DataError(f"self-check failed: bundle {folder} returned probabilities outside [0, 1]")
    version = str(predictor.version)
    return ServedBundle(
        path=folder,
        predictor=predictor,
        schema=schema,
        thresholds=thresholds,
        threshold_source=source,
        version=version,
        kind=str(predictor.kind),
        endpoints=tuple(spec.endpoint_names),
        observers=tuple(
            PREDICTED_PROBABILITY.labels(endpoint=e, model_version=version) for e in spec.endpoint_names
        ),
        outputs=OutputSchema.from_spec(spec),
        card=_read_card(folder),
    )


def _tensors(request: InferRequest) -> tuple[dict[str, Any], dict[str, str]]:
    """Input name -> decoder and datatype; a name given twice is refused (it would hide a tensor)."""
    tensors: dict[str, Any] = {}
    datatypes: dict[str, str] = {}
    for i, inp in enumerate(request.inputs):
        if not isinstance(inp.name, str) or inp.name in tensors:
            raise RequestError(f"inputs[{i}].name", "unique", "names a tensor already given (or is not text)")
        tensors[inp.name] = inp.as_numpy
        datatypes[inp.name] = inp.datatype
    return tensors, datatypes


@dataclass(frozen=True)
class _Batch:
    """Validated rows and the bundle they were validated against (so a reload cannot split them)."""

    served: ServedBundle
    columns: Columns
    v2: InferRequest | None
    ids: list[Any] | None = None  # the study's id column when the request carried it (for the log only)
    instances: list[Any] | None = None  # V1 instances that alone gave the columns (for the log only)


class CohortModel(Model):
    """A kserve.Model serving a cohortlm bundle (baseline or LLM).

    Args:
        name: the served model name (``/v1/models/<name>``).
        bundle: the bundle folder, or the store's ``<study>/champion`` pointer to follow.
        lookup: turns patient ids into stored feature rows (the Feast online store), or None.
        watch_interval: seconds between checks of the champion pointer; 0 turns watching off.
        require_manifest: refuse unpromoted bundles (no MANIFEST.json).
        max_batch: the most instances one request may carry.
        verify_key: public key (PEM) every served bundle must be signed with, or None.
        prediction_log: a :class:`serving.log_writer.PredictionLog` to record every prediction in
            (pseudonymised, off the request's path), or None.
    """

    def __init__(
        self,
        name: str,
        bundle: str | Path,
        *,
        lookup: FeatureLookup | None = None,
        watch_interval: float = 5.0,
        require_manifest: bool = True,
        max_batch: int = 1024,
        verify_key: str | Path | None = None,
        prediction_log: Any = None,
    ):
        super().__init__(name)
        self.prediction_log = prediction_log
        self.verify_key = verify_key
        self.bundle = Path(bundle)
        self.lookup = lookup
        self.watch_interval = watch_interval
        self.require_manifest = require_manifest
        self.max_batch = max_batch
        self.served: ServedBundle | None = None
        self.reload_now = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._refused: str | None = None  # a champion that failed its checks: not retried until it changes
        self.state = UNLOADED  # one of STATES
        self.state_reason = ""  # why the last load failed (an error type, never request content)
        # One load, unload or champion swap at a time (REST, gRPC and the watcher thread).
        self._transition = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    @property
    def version(self) -> str:
        """The version now serving, or ``"none"`` before a successful load."""
        return self.served.version if self.served is not None else "none"

    @property
    def follows_pointer(self) -> bool:
        """True when the bundle path is a symlink (the store's champion pointer) to be watched."""
        return self.bundle.is_symlink()

    def load(self) -> bool:
        """Load, verify and self-check the bundle; ready only when all of that succeeded.

        Raises:
            CohortlmError: the bundle was refused (the server must not start).
        """
        with self._transition:
            serving = self.served is not None
            if not serving:
                self.state = LOADING
            try:
                served = self._load(self.bundle)
            except Exception as exc:
                # A reload that fails keeps the version serving (as a refused champion does).
                if not serving:
                    self.state, self.state_reason = FAILED, type(exc).__name__
                raise
            self._swap(served)
            self._refused = None
            self.ready = True
            self.state, self.state_reason = LOADED, ""
        return self.ready

    def unload(self) -> None:
        """Stop serving the bundle: 503 and not ready until :meth:`load` reads it from disk again.

        The model stays registered (it is not :meth:`stop`: the watcher keeps running, and
        loads nothing while the model is unloaded). Requests already validated finish on the
        bundle they were validated against.
        """
        with self._transition:
            self.state = UNLOADING
            self.ready = False
            previous, self.served = self.served, None
            if previous is not None:
                MODEL_INFO.labels(
                    model_version=previous.version, kind=previous.kind, study=previous.schema.spec.name
                ).set(0)
            self.state, self.state_reason = UNLOADED, ""

    def _load(self, path: str | Path) -> ServedBundle:
        return load_served_bundle(
            path, require_manifest=self.require_manifest, max_batch=self.max_batch, verify_key=self.verify_key
        )

    def start(self) -> None:
        """Called by the ModelServer at start: keep readiness from load(), start watching the pointer."""
        # kserve's default start() sets ready=True whatever happened in load().
        self.ready = self.served is not None
        if self.follows_pointer and self.watch_interval > 0 and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="champion-watcher", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher and mark the model not ready."""
        self._stop.set()
        self.reload_now.set()
        super().stop()

    def _swap(self, served: ServedBundle) -> None:
        previous = self.served
        self.served = served  # one reference assignment: requests see the old or the new bundle
        if previous is not None and previous.version != served.version:
            MODEL_INFO.labels(
                model_version=previous.version, kind=previous.kind, study=previous.schema.spec.name
            ).set(0)
        MODEL_INFO.labels(model_version=served.version, kind=served.kind, study=served.schema.spec.name).set(
            1
        )

    def check_for_new_champion(self) -> bool:
        """Load the bundle the pointer names now if it differs from the one serving.

        Returns:
            True when a new version was swapped in.
        """
        with self._transition:  # never swaps a champion into an unloaded (or loading) model
            if self.served is None:
                return False
            return self._check_for_new_champion()

    def _check_for_new_champion(self) -> bool:
        assert self.served is not None
        target = Path(os.path.realpath(self.bundle))
        current = self.served.path
        if target == current or str(target) == self._refused:
            return False
        try:
            served = self._load(target)
        except CohortlmError as exc:
            self._refused = str(target)
            log.error("new champion %s refused, still serving %s: %s", target.name, self.version, exc)
            return False
        except Exception as exc:
            self._refused = str(target)
            log.error(
                "new champion %s refused (%s), still serving %s",
                target.name,
                type(exc).__name__,
                self.version,
            )
            return False
        self._refused = None
        old = self.version
        self._swap(served)
        log.info("champion changed: now serving %s (was %s)", served.version, old)
        return True

    def _watch(self) -> None:
        while not self._stop.is_set():
            forced = self.reload_now.wait(self.watch_interval)
            if self._stop.is_set():
                return
            if forced:
                self.reload_now.clear()
                self._refused = None  # SIGHUP: try again even a champion refused before
            self.check_for_new_champion()

    # ------------------------------------------------------------------ inference

    def validate(self, payload: Any) -> Any:
        """Requests are checked in preprocess against the spec; kserve's generic check is not needed."""
        return payload

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> _Batch:
        """Check the request against the spec and turn it into feature rows.

        Raises:
            InvalidInput: the request breaks a rule (400, naming the field and the rule).
        """
        served = self.served
        if served is None:
            raise SafeInferenceError("model: not loaded", status=503)
        try:
            if isinstance(payload, InferRequest):
                tensors, datatypes = _tensors(payload)
                served.schema.check_request_id(payload.id, tensors)  # the answer echoes the id
                columns = served.schema.columns_from_tensors(tensors, datatypes, lookup=self.lookup)
                return _Batch(served, columns, payload, self._v2_ids(served, tensors))
            if not isinstance(payload, dict) or "instances" not in payload:
                raise RequestError("body", "type", 'must be a JSON object with "instances" (V1 protocol)')
            columns = served.schema.columns_from_instances(payload["instances"], lookup=self.lookup)
        except RequestError as exc:
            raise SafeInvalidInput(str(exc)) from None
        except FeatureStoreError as exc:
            raise SafeInferenceError(str(exc), status=503) from None
        instances = payload["instances"] if self.prediction_log is not None and self.lookup is None else None
        return _Batch(served, columns, None, self._v1_ids(served, payload["instances"]), instances)

    def _v1_ids(self, served: ServedBundle, instances: list[Any]) -> list[Any] | None:
        """The id column of each instance, for the prediction log only (never a feature, never echoed)."""
        if self.prediction_log is None:
            return None
        id_column = served.schema.id_column
        ids = [inst.get(id_column) for inst in instances]
        return ids if any(i is not None for i in ids) else None

    def _v2_ids(self, served: ServedBundle, tensors: dict[str, Any]) -> list[Any] | None:
        if self.prediction_log is None or served.schema.id_column not in tensors:
            return None
        try:
            raw = np.asarray(tensors[served.schema.id_column]()).reshape(-1).tolist()
        except Exception:  # undecodable ids: the prediction is still served, unlinked in the log
            return None
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in raw]

    def predict(
        self,
        payload: _Batch,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Probabilities and decisions per endpoint, from the bundle the rows were validated against."""
        served = payload.served
        try:
            predict_columns = getattr(served.predictor, "predict_columns", None)
            if predict_columns is not None:  # the baseline's numpy fast path: no DataFrame per request
                proba = predict_columns(payload.columns)
            else:
                rows = served.schema.frame(payload.columns)
                proba = served.predictor.predict_proba(rows)[list(served.endpoints)].to_numpy(dtype=float)
        except Exception as exc:
            # The original message could quote feature values; the type is enough to look further.
            raise SafeInferenceError(
                f"model: prediction failed ({type(exc).__name__}); the model could not score the rows"
            ) from None
        for j, observer in enumerate(served.observers):
            for p in proba[:, j]:
                observer.observe(p)
        thresholds = np.array([served.thresholds[e] for e in served.endpoints])
        decisions = proba >= thresholds
        if self.prediction_log is not None:  # a queue put: never blocks, never fails the request
            ids = payload.ids if payload.ids is not None and len(payload.ids) == proba.shape[0] else None
            self.prediction_log.record(
                served.version,
                served.schema.spec,
                served.endpoints,
                ids,
                proba,
                decisions,
                payload.columns,
                instances=payload.instances,
            )
        if payload.v2 is not None:
            return self._v2_response(payload.v2, served, proba, decisions)
        return {
            **served.outputs.v1_rows(proba, decisions),
            "thresholds": dict(served.thresholds),
            "threshold_source": served.threshold_source,
            "model_name": self.name,
            "model_version": served.version,
            "model_kind": served.kind,
        }

    def _v2_response(
        self, request: InferRequest, served: ServedBundle, proba: np.ndarray, decisions: np.ndarray
    ) -> InferResponse:
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=served.version,
            infer_outputs=served.outputs.v2_outputs(proba, decisions),
            parameters={"threshold_source": served.threshold_source},
            # gRPC: raw inputs get raw outputs (what Triton's client reads); REST stays JSON.
            use_binary_outputs=bool(request.from_grpc and request.use_binary_outputs),
        )

    # ------------------------------------------------------------------ metadata

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: one input per feature."""
        if self.served is None:
            return []
        dtype = {"numeric": "FP64", "integer": "INT64", "binary": "INT64", "categorical": "BYTES"}
        return [{"name": r.name, "datatype": dtype[r.type], "shape": [-1]} for r in self.served.schema.rules]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata: a probability and a decision per endpoint (:mod:`serving.outputs`)."""
        return self.served.outputs.metadata() if self.served is not None else []

    def metadata_extension(self) -> dict[str, Any]:
        """What the model's metadata adds to KServe's (V1 and V2, :mod:`serving.metadata`).

        The version serving and its bundle's model card (intended use, data, performance
        with intervals, the gate's decision, limitations): names, counts and statistics,
        never a patient's value. Empty while no bundle is loaded.
        """
        served = self.served
        if served is None:
            return {}
        return {"versions": [served.version], "model_version": served.version, "model_card": served.card}
