"""A namespace setting is declared once (`mixpeek_infra/settings.py`) and reaches every surface from there:
the Python API's `NamespaceArgs`, the stack config's entries and their JSON Schema, the package schema of
other languages; and the stack's Ray heads are parsed once, the stack's token added by the program."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mixpeek_infra.json_schema import stack_config_json_schema
from mixpeek_infra.settings import (
    NamespaceSettings,
    StackEntrySettings,
    setting_docs,
    setting_names,
    setting_problems,
)
from mixpeek_infra.stackconfig import ENTRY_KEYS


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def test_every_shared_setting_is_a_keyword_of_namespace_args():
    from mixpeek_infra.namespace import NamespaceArgs

    fields = {f.name: f for f in dataclasses.fields(NamespaceArgs)}
    for name in setting_names():
        assert name in fields and fields[name].kw_only, name
    args = NamespaceArgs({"namespace_name": "x"}, deletion_protection=False)
    assert (args.deletion_protection, args.vectors_on_disk) == (False, False)


def test_every_stack_setting_is_a_key_of_the_stack_entry_and_its_json_schema():
    entry = stack_config_json_schema()["$defs"]["StackNamespaceEntry"]["properties"]
    for name in setting_names(StackEntrySettings):
        assert name in ENTRY_KEYS and name in entry, name
        assert entry[name].get("description") == setting_docs(StackEntrySettings)[name]
    assert set(setting_names()) <= set(setting_names(StackEntrySettings))


def test_the_package_schema_takes_every_shared_setting_camel_cased_with_its_description():
    from mixpeek_infra.component_provider import TYPE, provider

    inputs = json.loads(provider().schema)["resources"][TYPE]["inputProperties"]
    for name in setting_names():
        assert inputs[camel(name)]["description"] == setting_docs(NamespaceSettings)[name], name
    assert inputs["deletionProtection"]["type"] == "boolean" and inputs["namespaceId"]["type"] == "string"
    assert inputs["collectionSettings"]["type"] == "object"


@pytest.mark.parametrize("values, path, message", [
    ({"protect": "yes"}, "n.protect", "expected true or false, got 'yes'"),
    ({"vectors_on_disk": 1}, "n.vectors_on_disk", "expected true or false, got 1"),
    ({"key": "bad key/"}, "n.key", "'bad key/' is not a resource name"),
    ({"renamed_from": []}, "n.renamed_from", "[] is not an earlier key or namespace_name"),
    ({"namespace_id": "ns_bad"}, "n.namespace_id", "'ns_bad' is not 'ns_' followed by 10"),
    ({"cluster_id": ""}, "n.cluster_id", "expected a non-empty string, got ''"),
])
def test_a_setting_is_checked_strictly_in_this_package_words(values, path, message):
    out, problems = setting_problems(StackEntrySettings, values, "n")
    assert out == {} and [p.path for p in problems] == [path] and problems[0].message.startswith(message)


def test_valid_settings_come_back_typed():
    out, problems = setting_problems(StackEntrySettings, {"renamed_from": "old", "protect": True, "key": "k"}, "n")
    assert problems == [] and out == {"renamed_from": ("old",), "protect": True, "key": "k"}


def test_the_stack_token_is_added_to_kubernetes_heads_without_their_own():
    from mixpeek_infra.ray.spec import RayHead

    k8s = RayHead.kubernetes(image="rayproject/ray:2.0.0-py311")
    assert k8s.with_auth_token("t").k8s.auth_token == "t"
    assert k8s.with_auth_token(None) is k8s
    own = RayHead.kubernetes(image="rayproject/ray:2.0.0-py311", auth_token="mine")
    assert own.with_auth_token("t").k8s.auth_token == "mine"
    local = RayHead.local()
    assert local.with_auth_token("t") is local


def test_the_stack_config_holds_parsed_ray_heads(tmp_path):
    from mixpeek_infra.ray.spec import RayHead
    from mixpeek_infra.stackconfig import parse_stack_config

    body = {"namespace_name": "a", "feature_extractors": [{"feature_extractor_name": "image_extractor",
                                                            "version": "v1"}],
            "infrastructure": {"compute_tier": "dedicated_cpu"}}
    config = parse_stack_config({"namespaces": [{"request": body, "ray": {"mode": "local", "num_cpus": 2.0}}],
                                 "ray": {"mode": "external", "url": "ray://h:10001"}}, root=tmp_path)
    assert config.problems == ()
    assert isinstance(config.ray, RayHead) and config.ray.url == "ray://h:10001"
    assert isinstance(config.namespaces[0].ray, RayHead) and config.namespaces[0].ray.num_cpus == 2
