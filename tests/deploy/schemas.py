"""Strict schema validation of rendered objects, offline.

Built-in kinds are checked against the OpenAPI schemas kubernetes-validate ships
for one pinned Kubernetes version, in their strict variant: an unknown field is
an error, as the API server's strict field validation (kubectl's default) makes
it. Custom resources are checked against their CRDs' openAPIV3Schema, made strict
the same way. A kind with neither schema is a problem, never a silent pass.
CEL rules (x-kubernetes-validations) can't be evaluated offline.

kubernetes-validate's own validate() reloads a 2 MB definitions file per object;
the schemas it ships are read here once instead.
"""

import copy
import functools
import importlib.resources
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.deploy.manifests import YAML_LOADER, describe

K8S_VERSION = "1.37.0"
_SCHEMAS = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = {"$ref": f"{_DEFINITIONS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


def schema_problems(objects, crd_dir: Path) -> list[str]:
    crds = _crd_schemas(crd_dir)
    problems = []
    for obj in objects:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        validator = _builtin_validator(api_version, kind) or crds.get((api_version, kind))
        if validator is None:
            problems.append(
                f"{describe(obj)} ({api_version}): no schema, neither in Kubernetes "
                f"{K8S_VERSION} nor among the CRDs in {crd_dir}"
            )
            continue
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            where = ".".join(map(str, error.absolute_path)) or "(top level)"
            problems.append(f"{describe(obj)}: {where}: {error.message[:300]}")
    return problems


@functools.cache
def _registry() -> Registry:
    definitions = json.loads((_SCHEMAS / "_definitions.json").read_text())
    return Registry().with_resource(_DEFINITIONS_ID, Resource.from_contents(definitions))


@functools.cache
def _builtin_validator(api_version: str, kind: str) -> Draft202012Validator | None:
    group, _, version = api_version.rpartition("/")
    # kubernetes-validate's file naming: apps/v1 -> apps-v1, networking.k8s.io/v1 -> networking-v1.
    prefix = f"{group.split('.')[0]}-" if group else ""
    path = _SCHEMAS / f"{kind.lower()}-{prefix}{version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # The file name drops most of the group: make sure it is this group's kind
    # (a CRD's group like apps.example.com must not pass as apps/v1).
    if {"group": group, "version": version, "kind": kind} not in schema.get("x-kubernetes-group-version-kind", []):
        return None
    return Draft202012Validator(schema, registry=_registry())


@functools.cache
def _crd_schemas(crd_dir: Path) -> dict:
    if not crd_dir.is_dir():
        pytest.fail(f"no CRDs at {crd_dir}: they are kept in the repository (deploy/kubernetes/crds/README.md)")
    validators = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=YAML_LOADER):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = _strict(version["schema"]["openAPIV3Schema"])
                    # A CRD leaves metadata open (type: object); the API server checks it as ObjectMeta.
                    schema["properties"]["metadata"] = _OBJECT_META
                    validators[(f"{group}/{version['name']}", kind)] = Draft202012Validator(
                        schema, registry=_registry()
                    )
    return validators


def _strict(schema: dict) -> dict:
    """A copy in which every object with declared properties refuses others,
    unless the CRD keeps unknown fields on purpose there."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        stack.extend((node.get("properties") or {}).values())
        for key in ("items", "additionalProperties"):
            stack.append(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            stack.extend(node.get(key) or [])
    return schema
