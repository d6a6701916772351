"""KServe manifests checked offline against KServe's API types: strict fields, types, required fields.

Runs in the clients' environment (``.venv-clients``, where the ``kserve`` SDK is installed):
``.venv-clients/bin/python harness/kserve_manifests.py deploy/kserve/*.yaml``. The SDK's models
(``kserve.models``, and ``kubernetes.client.models`` for the pod types) are generated from the
same OpenAPI definitions as KServe's CRDs; each model's ``openapi_types`` and ``attribute_map``
say which fields exist and their types, and its setters refuse a missing required field. No
cluster is needed or called. Then what KServe's webhook would check across the two kinds: the
InferenceService names a runtime that exists, supports its model format and its protocol.

Prints one line per resource ("ok <kind>/<name>" or its problems) and exits 1 on any problem.
Imports nothing of the project.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import kubernetes.client.models as kubernetes_models
import kserve.models as kserve_models
import yaml

KINDS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
                                           "object": (object,), "datetime": (str,), "date": (str,)}


def _model(name: str) -> type | None:
    return getattr(kserve_models, name, None) or getattr(kubernetes_models, name, None)


def check(value: Any, type_name: str, path: str, problems: list[str]) -> None:
    """Append to ``problems`` where ``value`` is not a ``type_name`` as the SDK declares it."""
    if (inner := re.fullmatch(r"[lL]ist\[(.+)\]", type_name)):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for position, item in enumerate(value):
            check(item, inner.group(1), f"{path}[{position}]", problems)
        return
    # kserve's models write dict(str, str), the kubernetes client's Dict[str, str].
    if (inner := re.fullmatch(r"dict\((\w+), (.+)\)|Dict\[(\w+), (.+)\]", type_name)):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            check(item, inner.group(2) or inner.group(4), f"{path}.{key}", problems)
        return
    if type_name in PRIMITIVES:
        wanted = PRIMITIVES[type_name]
        if not isinstance(value, wanted) or (type_name in ("int", "float") and isinstance(value, bool)):
            problems.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    model = _model(type_name)
    if model is None:
        problems.append(f"{path}: the SDK has no type {type_name}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    by_json = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    for key in value:
        if key not in by_json:
            problems.append(f"{path}.{key}: no such field in {type_name} (fields: {', '.join(sorted(by_json))})")
    for key, item in value.items():
        if key in by_json:
            check(item, model.openapi_types[by_json[key]], f"{path}.{key}", problems)
    try:  # the generated setters refuse a missing required field and values outside an enum
        model(**{by_json[key]: item for key, item in value.items() if key in by_json})
    except (ValueError, TypeError) as refused:
        problems.append(f"{path}: {type_name}: {refused}")


def _across(resources: list[dict[str, Any]]) -> list[str]:
    """What KServe's webhook checks between an InferenceService and its ServingRuntime."""
    problems = []
    runtimes = {r["metadata"]["name"]: r["spec"] for r in resources if r.get("kind") == "ServingRuntime"}
    for service in (r for r in resources if r.get("kind") == "InferenceService"):
        model = service["spec"]["predictor"].get("model", {})
        name = service["metadata"]["name"]
        runtime = runtimes.get(model.get("runtime", ""))
        if runtime is None:
            problems.append(f"InferenceService/{name}: runtime {model.get('runtime')!r} is not among {sorted(runtimes)}")
            continue
        formats = {f["name"] for f in runtime.get("supportedModelFormats", [])}
        if model.get("modelFormat", {}).get("name") not in formats:
            problems.append(f"InferenceService/{name}: model format {model.get('modelFormat')} not in {formats}")
        if model.get("protocolVersion", "v1") not in runtime.get("protocolVersions", ["v1"]):
            problems.append(f"InferenceService/{name}: protocol {model.get('protocolVersion')} not in the runtime's "
                            f"{runtime.get('protocolVersions')}")
        if not any(c.get("name") == "kserve-container" for c in runtime.get("containers", [])):
            problems.append(f"ServingRuntime/{model['runtime']}: no container named kserve-container")
    return problems


def main(paths: list[str]) -> int:
    resources = [document for path in paths for document in yaml.safe_load_all(Path(path).read_text()) if document]
    failed = False
    for resource in resources:
        key = (resource.get("apiVersion"), resource.get("kind"))
        where = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        problems: list[str] = []
        if key not in KINDS:
            problems.append(f"not a KServe kind this checks: {key}")
        else:
            check(resource, KINDS[key], where, problems)
        failed |= bool(problems)
        print(f"ok {where}" if not problems else "\n".join(f"FAIL {p}" for p in problems))
    across = _across(resources)
    for problem in across:
        print(f"FAIL {problem}")
    return 1 if failed or across else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
