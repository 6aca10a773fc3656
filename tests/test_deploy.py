"""deploy/trainjob.yaml, Kubeflow Trainer v2: valid against the upstream CRDs' schemas (no cluster here), with
no field the API server would drop; the project's exit codes reach its restart policy; a pod gets TF_CONFIG.

The CRDs are kubeflow/trainer's manifests/base/crds/ at commit 8c0f5059bd51ec3ba6d6a6a7b2e1471de7bc13b3
(2026-08-21), gzipped in tests/data/.
"""

import copy
import gzip
import json
import re

import jsonschema
import pytest
import yaml

from alexnet import errors
from alexnet.errors import ConfigError
from alexnet.training.cluster import TRAINJOB_NAME, TRAINJOB_NODES, TRAINJOB_PORT, set_tf_config_from_trainjob
from helpers import CLUSTER_COMMAND, ROOT

CRDS = {"ClusterTrainingRuntime": "trainer.kubeflow.org_clustertrainingruntimes.yaml.gz",
        "TrainJob": "trainer.kubeflow.org_trainjobs.yaml.gz"}


def manifests() -> dict:
    """{kind: document} of deploy/trainjob.yaml."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all((ROOT / "deploy" / "trainjob.yaml").read_text())}


def crd_schema(kind: str, version: str) -> dict:
    """The openAPIV3Schema the upstream CRD gives that kind at that version."""
    crd = next(doc for doc in yaml.safe_load_all(gzip.decompress((ROOT / "tests" / "data" / CRDS[kind]).read_bytes()))
               if doc)
    assert crd["spec"]["names"]["kind"] == kind
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)


def unknown_fields(value, schema: dict, path: str = "") -> list[str]:
    """The paths of keys the schema does not declare: the API server prunes them without a word (kubectl's
    --validate=strict names them), so a misspelt key would silently do nothing."""
    if isinstance(value, list):
        items = schema.get("items", {})
        return [p for i, item in enumerate(value) for p in unknown_fields(item, items, f"{path}[{i}]")]
    if not isinstance(value, dict) or "properties" not in schema or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    for key, item in value.items():
        if key in schema["properties"]:
            found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
        elif not schema.get("additionalProperties"):
            found.append(f"{path}.{key}")
    return found


def problems(document: dict) -> list[str]:
    """Schema violations and unknown fields of a manifest document, against its kind's upstream CRD."""
    schema = crd_schema(document["kind"], document["apiVersion"].split("/")[1])
    validator = jsonschema.Draft4Validator(schema)  # OpenAPI 3.0's schema objects are JSON Schema draft 4's
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)] + \
        unknown_fields(document, schema)


def test_the_trainjob_manifests_follow_kubeflow_trainers_schemas_and_a_broken_one_does_not():
    documents = manifests()
    assert set(documents) == {"ClusterTrainingRuntime", "TrainJob"}
    for document in documents.values():
        assert problems(document) == [], document["kind"]
    job = documents["TrainJob"]
    assert job["spec"]["runtimeRef"] == {"name": documents["ClusterTrainingRuntime"]["metadata"]["name"],
                                         "kind": "ClusterTrainingRuntime"}
    # The check sees a wrong type and a misspelt key.
    broken = copy.deepcopy(job)
    broken["spec"]["trainer"]["numNodes"] = "two"
    broken["spec"]["trainer"]["numNode"] = 2
    found = problems(broken)
    assert any(p.startswith("spec.trainer.numNodes: 'two' is not of type 'integer'") for p in found), found
    assert ".spec.trainer.numNode" in found


def node_job() -> dict:
    """The Job template of the runtime's one replicated job, "node" (the name Trainer gives its trainer pods)."""
    (replicated,) = manifests()["ClusterTrainingRuntime"]["spec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == "node"
    return replicated["template"]["spec"]


def test_the_codes_that_restarting_cannot_help_fail_the_jobset_and_the_others_restart_every_worker():
    table = re.findall(r"^\| (\d+) \| [^|]+ \| ([^|]*) \|", errors.__doc__, flags=re.MULTILINE)
    permanent = {int(code) for code, restart in table if restart.strip().startswith("no")}
    retryable = {int(code) for code, restart in table if restart.strip().startswith("yes")}
    assert permanent == {1, 2, 3, 4, 5, 6, 7} and retryable == {130, 138, 143}
    job = node_job()
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["operator"] == "In"
    assert set(rule["onExitCodes"]["values"]) == permanent and rule["onExitCodes"]["containerName"] == "node"
    # Any other failure fails the Job at once (every worker must restart together)...
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"
    # ...and the JobSet restarts it, unless the Job failed by the policy above.
    policy = manifests()["ClusterTrainingRuntime"]["spec"]["template"]["spec"]["failurePolicy"]
    assert policy["maxRestarts"] > 0
    assert policy["rules"] == [{"name": "permanent-error", "action": "FailJobSet",
                                "onJobFailureReasons": ["PodFailurePolicy"]}]


def test_each_pod_runs_the_documented_command_and_gets_the_tf_config_of_its_index():
    job, documents = node_job(), manifests()
    (container,) = job["template"]["spec"]["containers"]
    command = " ".join(container["command"])
    assert command == CLUSTER_COMMAND
    assert f"  {command}" in (ROOT / "docs" / "distributed.md").read_text()
    assert job["completionMode"] == "Indexed" and container["ports"] == [{"containerPort": TRAINJOB_PORT}]
    assert container["env"] == [{"name": TRAINJOB_NAME, "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['jobset.sigs.k8s.io/jobset-name']"}}}]
    trainer = documents["TrainJob"]["spec"]["trainer"]
    assert trainer["env"] == [{"name": TRAINJOB_NODES, "value": str(trainer["numNodes"])}]

    # What the second pod of a TrainJob named "alexnet" sees, and what it makes of it.
    environ = {TRAINJOB_NAME: "alexnet", TRAINJOB_NODES: "2", "JOB_COMPLETION_INDEX": "1"}
    set_tf_config_from_trainjob(environ)
    assert json.loads(environ["TF_CONFIG"]) == {
        "cluster": {"worker": ["alexnet-node-0-0.alexnet:2222", "alexnet-node-0-1.alexnet:2222"]},
        "task": {"type": "worker", "index": 1}}
    given = {"TF_CONFIG": "{}", TRAINJOB_NAME: "alexnet", TRAINJOB_NODES: "2"}
    set_tf_config_from_trainjob(given)
    assert given["TF_CONFIG"] == "{}"  # one set by the cluster wins
    with pytest.raises(ConfigError, match="the Job must be Indexed"):
        set_tf_config_from_trainjob({TRAINJOB_NAME: "alexnet", TRAINJOB_NODES: "2"})
