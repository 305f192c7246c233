"""The plan's checks pinned where the mutation check (docs/testing.md) found that a changed comparison,
default or message of mixpeek_infra.plan passed the rest of the suite: the namespace_id and Ray head
problems, which namespaces of a stack share a collection, and the plan's own data."""

from __future__ import annotations

import copy

import pytest

from mixpeek_infra.plan import collection_conflicts, namespace_id_problem, plan_namespace, ray_head_problem

NS = "ns_0123456789"


@pytest.fixture
def plan(seed):
    def make(namespace_id=None, **infra):
        body = copy.deepcopy(seed)
        if namespace_id is not None:
            body["namespace_id"] = namespace_id
        if infra:
            body["infrastructure"] = infra
        return plan_namespace(body)
    return make


# --- namespace_id_problem


def test_namespace_id_problem_accepts_no_id_a_well_formed_one_and_the_bodys_own(plan):
    assert namespace_id_problem(plan(), None) is None
    assert namespace_id_problem(plan(), NS) is None
    assert namespace_id_problem(plan(NS), NS) is None
    assert namespace_id_problem(plan(NS), None) is None


@pytest.mark.parametrize("given", ["ns_012345678", "ns_0123456789a", "ns_0123456789\n", "NS_0123456789",
                                   "ns_012345678G", 12, ""])
def test_namespace_id_problem_names_a_malformed_id(plan, given):
    problem = namespace_id_problem(plan(), given)
    assert problem == ("namespace_id", f"{given!r} is not 'ns_' followed by 10 lowercase hex characters")


def test_namespace_id_problem_names_both_ids_when_they_disagree(plan):
    problem = namespace_id_problem(plan(NS), "ns_abcdefabcd")
    assert problem == ("namespace_id", f"the body's namespace_id {NS!r} disagrees with the given namespace_id "
                                       "'ns_abcdefabcd'; give one")


# --- ray_head_problem


@pytest.mark.parametrize("mode", [None, "external"])
def test_no_head_or_an_external_one_is_never_a_problem(plan, mode):
    infra = plan(compute_tier="shared", ray_head_node_url="ray://h:10001").infrastructure
    assert ray_head_problem(infra, mode) is None


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_a_head_of_our_own_beside_a_named_cluster_is_refused(plan, mode):
    infra = plan(compute_tier="dedicated_cpu", ray_head_node_url="ray://h:10001").infrastructure
    assert ray_head_problem(infra, mode) == (
        "infrastructure.ray_head_node_url",
        f"the request names an existing Ray cluster, but a {mode!r} head is given too; use one")


def test_a_head_of_our_own_for_the_shared_tier_is_refused(plan):
    problem = ray_head_problem(plan(compute_tier="shared").infrastructure, "local")
    assert problem.path == "infrastructure.compute_tier"
    assert problem.message.startswith("'shared' uses a shared Ray cluster and creates no head of its own, but a "
                                      "'local' head is given: give an external head (its URL)")
    assert problem.message.endswith("or choose 'dedicated_cpu' or 'dedicated_gpu' for a head of its own")


@pytest.mark.parametrize("infra", [{"compute_tier": "dedicated_cpu"},
                                   {"compute_tier": "dedicated_gpu", "gpu_type": "T4"}])
def test_a_dedicated_tier_takes_a_head_of_its_own(plan, infra):
    assert ray_head_problem(plan(**infra).infrastructure, "local") is None


# --- collection_conflicts: one collection on one Qdrant target per stack


def test_a_second_namespace_id_on_the_same_target_is_refused_naming_the_first(plan):
    conflicts = collection_conflicts([(0, plan(NS), {}), (4, plan(), {"namespace_id": NS})])
    assert conflicts == [(4, "namespace_id",
                          f"its collection {NS!r} (named after namespace_id) is already used by namespaces[0] "
                          "(same Qdrant target); two namespaces must never share a collection: give this namespace "
                          "its own namespace_id, or leave it out")]


def test_an_explicit_collection_equal_to_an_earlier_one_is_refused_naming_the_first(plan):
    conflicts = collection_conflicts([(2, plan(qdrant_collection="docs"), {}),
                                      (5, plan(qdrant_collection="docs"), {}),
                                      (6, plan(qdrant_collection="docs"), {})])
    assert [c[:2] for c in conflicts] == [(5, "infrastructure.qdrant_collection"),
                                          (6, "infrastructure.qdrant_collection")]
    assert conflicts[0][2] == ("'docs' is already used by namespaces[2] (same Qdrant target); two namespaces must "
                               "never share a collection: name another collection, or leave qdrant_collection out "
                               "to name it after this namespace's own id")
    assert "namespaces[2]" in conflicts[1][2]


def test_a_namespace_with_a_generated_id_is_skipped_not_the_end_of_the_check(plan):
    conflicts = collection_conflicts([(0, plan(), {}), (1, plan(qdrant_collection="docs"), {}),
                                      (2, plan(qdrant_collection="docs"), {})])
    assert [c[:2] for c in conflicts] == [(2, "infrastructure.qdrant_collection")]


def test_the_explicit_collection_wins_over_the_namespace_id(plan):
    assert collection_conflicts([(0, plan(NS, qdrant_collection="docs"), {}), (1, plan(NS), {})]) == []


@pytest.mark.parametrize("first, second, shared", [
    ({}, {}, True),  # both on the default embedded directory
    ({"qdrant": {"path": ".mixpeek/qdrant/"}}, {}, True),
    ({"qdrant": {"path": "./data/../q"}}, {"qdrant": {"path": "q"}}, True),
    ({"qdrant": {"path": "q1"}}, {"qdrant": {"path": "q2"}}, False),
    ({"qdrant": {"path": ""}}, {}, True),
    ({"qdrant": "not a mapping"}, {}, True),
    ({"qdrant": {"url": "http://h"}}, {"qdrant": {"url": "http://H:6333/"}}, True),
    ({"qdrant": {"url": "http://h:6334"}}, {"qdrant": {"url": "http://h"}}, False),
    ({"qdrant": {"url": "http://h/a"}}, {"qdrant": {"url": "http://h/b"}}, False),
    ({"qdrant": {"url": "http://h/a/"}}, {"qdrant": {"url": "http://h/a"}}, True),
    ({"qdrant": {"url": "http://h/pathX"}}, {"qdrant": {"url": "http://h/path"}}, False),
    ({"qdrant": {"url": "http://h"}}, {}, False),
    ({"qdrant": {"url": ""}}, {}, True),
    ({"qdrant": {"url": "http://h:bad"}}, {"qdrant": {"url": "http://h:bad"}}, True),
    ({"qdrant": {"url": "http://h:bad"}}, {"qdrant": {"url": "http://h"}}, False),
])
def test_the_target_of_a_collection_is_its_server_or_its_normalised_directory(plan, first, second, shared):
    conflicts = collection_conflicts([(0, plan(qdrant_collection="docs"), first),
                                      (1, plan(qdrant_collection="docs"), second)])
    assert bool(conflicts) is shared


def test_a_stack_entrys_target_overrides_the_default_and_an_explicit_none_is_the_embedded_default(plan):
    default = {"url": "http://default"}
    assert collection_conflicts([(0, plan(qdrant_collection="docs"), {}),
                                 (1, plan(qdrant_collection="docs"), {"qdrant": None})], default) == []
    assert collection_conflicts([(0, plan(qdrant_collection="docs"), {"qdrant": {"url": "http://default:6333"}}),
                                 (1, plan(qdrant_collection="docs"), {})], default) != []


# --- the plan's own data


def _late_interaction_plan(seed, **infra):
    """The seed plus a user extractor with one multi-vector output, in a catalogue copy."""
    from mixpeek_infra.extractors import DEFAULT_CATALOGUE, extractor_from_config

    catalogue = DEFAULT_CATALOGUE.copy()
    catalogue.register(extractor_from_config({"name": "acme_colbert", "version": "v1", "vectors": [
        {"output": "tokens", "size": 4, "inference_service": "acme_colbert_service", "multivector": True}]}))
    body = copy.deepcopy(seed)
    body["feature_extractors"].append({"feature_extractor_name": "acme_colbert", "version": "v1"})
    if infra:
        body["infrastructure"] = infra
    return body, catalogue


def test_vector_config_marks_only_multivector_outputs(seed):
    body, catalogue = _late_interaction_plan(seed)
    p = plan_namespace(body, catalogue=catalogue)
    assert [v.multivector for v in p.vectors].count(True) == 1
    config = p.vector_config()
    assert config["acme_colbert_v1_tokens"] == {"size": 4, "distance": "cosine", "datatype": "float32",
                                                "on_disk": False, "multivector": {"comparator": "max_sim"}}
    assert list(config) == [v.name for v in p.vectors]
    for v in p.vectors:
        expected = {"size": v.size, "distance": v.distance, "datatype": v.datatype, "on_disk": v.on_disk}
        if v.multivector:
            expected["multivector"] = {"comparator": "max_sim"}
        assert config[v.name] == expected


@pytest.mark.parametrize("infra, shared", [
    ({"compute_tier": "shared"}, True),
    ({"compute_tier": "shared", "ray_head_node_url": "ray://h:10001"}, False),
    ({"compute_tier": "dedicated_cpu"}, False),
])
def test_uses_shared_head_only_for_the_shared_tier_without_a_head_url(plan, infra, shared):
    assert plan(**infra).infrastructure.uses_shared_head is shared


def test_to_dict_is_the_whole_plan_under_its_documented_keys(seed):
    """`plan --json`: every field under its own key, multivector only on multi-vector outputs, warnings as
    {field, message}."""
    body, catalogue = _late_interaction_plan(seed, compute_tier="dedicated_cpu", gpu_type="T4")
    body["namespace_id"] = NS
    p = plan_namespace(body, catalogue=catalogue)
    d = p.to_dict()
    assert list(d) == ["namespace_name", "description", "auto_create_indexes", "feature_extractors", "vectors",
                       "payload_indexes", "vector_inference_map", "infrastructure", "mode", "vector_configs",
                       "namespace_id", *p.labels, "warnings"]
    assert (d["namespace_name"], d["description"], d["auto_create_indexes"], d["mode"], d["namespace_id"]) == (
        p.namespace_name, p.description, p.auto_create_indexes, p.mode, NS)
    assert d["vectors"][-1] == {"name": "acme_colbert_v1_tokens", "size": 4, "distance": "cosine",
                                "datatype": "float32", "on_disk": False, "multivector": True}
    assert all("multivector" not in v for v in d["vectors"][:-1])
    assert d["vector_inference_map"] == p.vector_inference_map
    assert d["infrastructure"] == p.infrastructure.to_dict() and d["infrastructure"]["compute_tier"] == "dedicated_cpu"
    assert d["warnings"] == [{"field": "infrastructure.gpu_type", "message": p.warnings[0][1]}]
    assert "ignored: the explicit compute_tier 'dedicated_cpu' wins" in p.warnings[0][1]


def test_bring_your_own_vectors_are_planned_and_written_back_as_the_api_does(seed):
    body = {"namespace_name": "byo", "vector_configs": [{"name": "emb", "dimension": 8, "metric": "dot_product"},
                                                        {"name": "geo", "dimension": 2, "metric": "Euclid"}]}
    p = plan_namespace(body, vectors_on_disk=True)
    assert p.mode == "standalone" and p.feature_extractors == ()
    assert [(v.name, v.size, v.distance, v.datatype, v.on_disk, v.inference_service, v.feature_extractor_id)
            for v in p.vectors] == [("emb", 8, "dot", "float32", True, None, None),
                                    ("geo", 2, "euclid", "float32", True, None, None)]
    assert p.vector_configs == ({"name": "emb", "dimension": 8, "metric": "dot_product"},
                                {"name": "geo", "dimension": 2, "metric": "euclidean"})
    assert p.to_dict()["vector_configs"] == list(p.vector_configs)
    assert p.vector_inference_map == {"emb": None, "geo": None}
    assert all(not v.on_disk for v in plan_namespace(body).vectors)


def test_extractor_vectors_come_before_bring_your_own_ones_and_the_mode_stays_managed(seed):
    body = copy.deepcopy(seed)
    body["vector_configs"] = [{"name": "emb", "dimension": 8}]
    p = plan_namespace(body)
    assert p.mode == "managed" and p.vectors[-1].name == "emb" and p.vectors[-1].distance == "cosine"
    assert len(p.vectors) == len(plan_namespace(seed).vectors) + 1


def test_labels_hold_exactly_the_given_ones_and_auto_create_indexes_carries(seed):
    body = copy.deepcopy(seed)
    body.update(namespace_type="standard", adaptive_indexing=False, auto_create_indexes=True)
    p = plan_namespace(body)
    assert p.labels == {"namespace_type": "standard", "adaptive_indexing": False}
    assert p.auto_create_indexes is True
    body.update(auto_create_indexes=False)
    assert plan_namespace(body).auto_create_indexes is False


def test_no_infrastructure_warning_without_a_gpu_type_or_on_the_gpu_tier(plan):
    assert plan().warnings == ()
    assert plan(compute_tier="dedicated_cpu").warnings == ()
    assert plan(compute_tier="dedicated_gpu", gpu_type="T4").warnings == ()
    warned = plan(compute_tier="dedicated_cpu", gpu_type="T4")
    assert warned.warnings == (("infrastructure.gpu_type",
                                "ignored: the explicit compute_tier 'dedicated_cpu' wins and runs no GPU workers; drop "
                                "compute_tier (or set 'dedicated_gpu') to get GPU workers"),)
    assert warned.infrastructure.gpu_type is None and warned.infrastructure.gpus_per_worker == 0


def test_extractors_without_vectors_are_refused_naming_them(seed):
    from mixpeek_infra.extractors import DEFAULT_CATALOGUE, extractor_from_config
    from mixpeek_infra.schema import InvalidRequest

    catalogue = DEFAULT_CATALOGUE.copy()
    catalogue.register(extractor_from_config({"name": "acme_tags", "version": "v1", "vectors": []}))
    catalogue.register(extractor_from_config({"name": "acme_ocr", "version": "v2", "vectors": []}))
    body = {"namespace_name": "tags", "feature_extractors": [{"feature_extractor_name": "acme_tags", "version": "v1"},
                                                             {"feature_extractor_name": "acme_ocr", "version": "v2"}]}
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(body, catalogue=catalogue)
    assert info.value.problems == [("feature_extractors",
                                    "the extractors (acme_tags v1, acme_ocr v2) create no vectors, and a collection "
                                    "needs at least one named vector: declare the extractor's vectors, add one that "
                                    "has some, or give vector_configs")]


def test_the_description_carries(seed):
    assert plan_namespace(seed).description == seed["description"] and seed["description"]


@pytest.mark.parametrize("given, size", [(None, 3072), (768, 768), (1536, 1536)])
def test_a_param_that_sets_a_vector_size_sizes_the_vector_and_is_recorded(given, size):
    fe = {"feature_extractor_name": "multimodal_extractor", "version": "v2"}
    if given is not None:
        fe["params"] = {"output_dimensionality": given}
    p = plan_namespace({"namespace_name": "gemini", "feature_extractors": [fe]})
    assert p.vector_config()["multimodal_extractor_v2_multimodal_embedding"]["size"] == size
    assert p.feature_extractors[0]["params"]["output_dimensionality"] == size
