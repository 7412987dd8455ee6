"""The Kubernetes manifests and every shipped Dapr Component, checked offline.

- Kubernetes kinds (Deployment, HPA, PodDisruptionBudget, ServiceAccount, Secret) against
  the schemas kubernetes-validate bundles, strictly (unknown fields are errors).
- Dapr kinds (Component, Configuration, Resiliency) against the CRDs of the Dapr version we
  build (`charts/dapr/crds/` of the github.com/dapr/dapr module), with unknown fields made
  errors as `kubectl apply` does.
- Each Component's metadata names against components-contrib's `metadata.yaml` for its type
  and version (the module daprd is built with): every name known, every required one given.

Both Go modules come from the module cache the sidecar build fills (`go mod download` finds
them there without network when they are cached).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.support import PROJECT_ROOT

KUBERNETES = PROJECT_ROOT / "deploy" / "kubernetes"
# kustomization.yaml is kustomize's own file, not a resource (its list is checked below).
SHIPPED = [
    *sorted(p for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml"),
    *sorted((PROJECT_ROOT / "components").rglob("*.yaml")),
]
KUBERNETES_VERSION = "1.33.0"
DAPR_KINDS = {"Component": "components.yaml", "Configuration": "configuration.yaml",
              "Resiliency": "resiliency.yaml"}  # fmt: skip
# daprd reads these for any state store (pkg/runtime/processor/state), whatever the
# component's own metadata.yaml lists.
RUNTIME_STATE_KEYS = {"actorStateStore", "keyPrefix"}


def _module_dir(module: str) -> Path:
    go_mod = (PROJECT_ROOT / "sidecar" / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", go_mod, re.MULTILINE)
    assert match, f"{module} is not in sidecar/go.mod"
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{match.group(1)}"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return Path(json.loads(out.stdout)["Dir"])


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema where unknown fields are errors (kubectl's strict field
    validation), except where the CRD keeps them on purpose."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def _dapr_schema(kind: str) -> dict[str, Any]:
    crd = _documents(_module_dir("github.com/dapr/dapr") / "charts/dapr/crds" / DAPR_KINDS[kind])
    [definition] = [d for d in crd if d["kind"] == "CustomResourceDefinition"]
    [version] = [v for v in definition["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    # The API server supplies the object metadata schema; names are all we use.
    schema["properties"]["metadata"] = {"type": "object"}
    return dict(_strict(schema))


@cache
def _component_metadata(kind: str, version: str) -> dict[str, Any]:
    family, _, name = kind.partition(".")
    root = _module_dir("github.com/dapr/components-contrib") / family / name.replace(".", "/")
    for candidate in (root / version / "metadata.yaml", root / "metadata.yaml"):
        if candidate.exists():
            found: dict[str, Any] = yaml.safe_load(candidate.read_text())
            if found.get("version", version) == version:
                return found
    raise AssertionError(f"components-contrib has no metadata.yaml for {kind} {version}")


def _all_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.relative_to(PROJECT_ROOT)}#{i}", document)
        for path in SHIPPED
        for i, document in enumerate(_documents(path))
    ]


def test_the_manifests_hold_what_a_deployment_needs() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert all((KUBERNETES / name).is_file() for name in listed), listed
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in _all_documents()}
    for needed in [
        ("Deployment", "fte-worker"),
        ("HorizontalPodAutoscaler", "fte-worker"),
        ("Configuration", "fte"),
        ("Resiliency", "fte"),
        ("Component", "statestore"),
        ("Component", "pubsub"),
    ]:
        assert needed in kinds, needed
    [deployment] = [d for _, d in _all_documents() if d["kind"] == "Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["dapr.io/enabled"] == "true" and annotations["dapr.io/app-id"] == "fte"
    assert annotations["dapr.io/config"] == "fte"
    for component in (KUBERNETES / "components").rglob("*.yaml"):
        for document in _documents(component):
            text = json.dumps(document)
            assert "CHANGE-ME" not in text and "password=" not in text, component
            assert document.get("auth", {}).get("secretStore") == "kubernetes", component


@pytest.mark.parametrize(
    "where, document", _all_documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_manifest_is_valid(where: str, document: dict[str, Any]) -> None:
    kind = document["kind"]
    if kind in DAPR_KINDS:
        validator = jsonschema.Draft7Validator(_dapr_schema(kind))
        errors = [
            f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(document)
        ]
        assert not errors, f"{where}: {errors}"
        assert document["apiVersion"] == "dapr.io/v1alpha1", where
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    if kind == "Component":
        _check_component_metadata(where, document)


def _check_component_metadata(where: str, component: dict[str, Any]) -> None:
    spec = component["spec"]
    described = _component_metadata(spec["type"], spec["version"])
    profiles = described.get("authenticationProfiles") or []
    known = {m["name"] for m in described.get("metadata") or []}
    known |= {m["name"] for p in profiles for m in p.get("metadata") or []}
    if spec["type"].startswith("state."):
        known |= RUNTIME_STATE_KEYS
    given = {m["name"] for m in spec.get("metadata") or []}
    unknown = {name for name in given if name.lower() not in {k.lower() for k in known}}
    assert not unknown, f"{where}: {spec['type']} {spec['version']} has no metadata {unknown}"
    required = {m["name"] for m in described.get("metadata") or [] if m.get("required")}
    assert required <= given, f"{where}: missing required {required - given}"
    if profiles:
        # At least one authentication profile must be complete.
        assert any(
            {m["name"] for m in p.get("metadata") or [] if m.get("required")} <= given
            for p in profiles
        ), f"{where}: no authentication profile of {spec['type']} is complete"
    for item in spec.get("metadata") or []:
        assert ("value" in item) != ("secretKeyRef" in item), f"{where}: {item['name']}"
        if "secretKeyRef" in item:
            assert component.get("auth", {}).get("secretStore"), f"{where}: no auth.secretStore"
