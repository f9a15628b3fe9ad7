"""How the Cloud Run service's settings are chosen: the flow's BuildFlow options, then
``[tool.buildflow.gcp]``, then flags; and what is refused, with a message that says why."""

from __future__ import annotations

from typing import Any

import pytest

from bfctl.providers.gcp.deploy import check_instances, parse_env_flags, service_name, service_settings
from bfctl.providers.gcp.errors import GCPSettingsError
from buildflow import Flow


def flow(*service_options: dict[str, Any], collector: dict[str, Any] | None = None) -> Flow:
    app = Flow()
    for n, options in enumerate(service_options):
        service = app.service(f"/s{n}", **options)
        service.endpoint("/")(lambda: "ok")
    if collector is not None:
        app.collector("/c", method="POST", **collector)(lambda n: {"n": n})
    return app


def test_each_instance_takes_the_most_any_part_of_the_flow_asks_for() -> None:
    settings = service_settings(
        flow(
            {"num_cpus": 0.5, "min_replicas": 0, "max_replicas": 3, "max_concurrent_queries": 20},
            {"num_cpus": 1.5, "min_replicas": 0, "max_replicas": 9, "max_concurrent_queries": 80},
            collector={"num_replicas": 2, "min_replicas": 2, "max_replicas": 4, "max_concurrent_queries": 5000},
        ),
        {},
        {},
    )
    assert (settings.cpu, settings.memory, settings.workers) == (2, "1024Mi", 2)
    assert (settings.min_instances, settings.max_instances) == (2, 9)
    assert settings.concurrency == 1000  # Cloud Run's ceiling
    assert (settings.ingress, settings.public, dict(settings.env)) == ("all", False, {})


@pytest.mark.parametrize(
    ("num_cpus", "cpu", "memory"),
    [(1, 1, "512Mi"), (2, 2, "1024Mi"), (3, 4, "2048Mi"), (5, 6, "4096Mi"), (8, 8, "4096Mi")],
)
def test_default_memory_is_one_cloud_run_gives_the_cpus(num_cpus: float, cpu: int, memory: str) -> None:
    settings = service_settings(flow({"num_cpus": num_cpus}), {}, {})
    assert (settings.cpu, settings.memory) == (cpu, memory)


@pytest.mark.parametrize(("cpu", "memory"), [(2, "4Gi"), (4, "8Gi"), (6, "16Gi"), (8, "32Gi"), (8, "4Gi")])
def test_memory_at_each_cpu_ceiling_is_taken(cpu: int, memory: str) -> None:
    assert service_settings(flow({}), {"cpu": cpu, "memory": memory}, {}).memory == memory


def test_max_instances_is_cloud_runs_default_unless_the_flow_sets_max_replicas() -> None:
    unset = service_settings(flow({"min_replicas": 0}, collector={"min_replicas": 0}), {}, {})
    assert (unset.max_instances, unset.max_instances_default) == (100, True)
    (note,) = [w for w in check_instances(unset) if "scales to at most" in w]
    assert "at most 100 instances, Cloud Run's default" in note and "Set max_replicas" in note
    # BuildFlow's own default number, given: the flow's choice, passed on with the quota named.
    given = service_settings(flow({"min_replicas": 0, "max_replicas": 1000}), {}, {})
    assert (given.max_instances, given.max_instances_default) == (1000, False)
    assert any("scale to 1000 instances of 1 CPU(s)" in w and "CPU quota" in w for w in check_instances(given))
    # A collector's max_replicas counts too; a part leaving it unset asks for nothing.
    collector = service_settings(flow({"min_replicas": 0}, collector={"min_replicas": 0, "max_replicas": 5}), {}, {})
    assert (collector.max_instances, collector.max_instances_default) == (5, False)
    assert not [w for w in check_instances(collector) if "instances" in w]
    # Never below the instances kept running.
    assert service_settings(flow({"min_replicas": 150, "num_replicas": 150}), {}, {}).max_instances == 150


def test_flags_win_over_pyproject_which_wins_over_the_flow() -> None:
    table = {"memory": "1Gi", "public": True, "ingress": "internal", "workers": 3, "env": {"MODE": "a", "X": "1"}}
    settings = service_settings(flow({"num_cpus": 4}), table, {"memory": "2Gi", "public": None, "env": {"MODE": "b"}})
    assert (settings.cpu, settings.memory, settings.public, settings.ingress) == (4, "2Gi", True, "internal")
    assert settings.workers == 3
    assert dict(settings.env) == {"MODE": "b", "X": "1"}  # --env adds to the table's, and wins


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"memory": "512MB"}, "memory '512MB' is not a size Cloud Run takes"),
        ({"cpu": 4, "memory": "1Gi"}, "Cloud Run gives 4 CPUs at least 2Gi of memory"),
        ({"cpu": 6, "memory": "3Gi"}, "Cloud Run gives 6 CPUs at least 4Gi of memory"),
        ({"cpu": 8, "memory": "4000Mi"}, "Cloud Run gives 8 CPUs at least 4Gi of memory"),
        ({"cpu": 1, "memory": "4097Mi"}, "4097Mi of memory only to instances of at least 2 CPUs: set cpu = 2"),
        ({"cpu": 2, "memory": "9Gi"}, "at least 4 CPUs: set cpu = 4"),
        ({"cpu": 4, "memory": "17Gi"}, "at least 6 CPUs: set cpu = 6"),
        ({"cpu": 6, "memory": "25Gi"}, "at least 8 CPUs: set cpu = 8"),
        ({"cpu": 8, "memory": "33Gi"}, "more than a Cloud Run instance has (at most 32Gi)"),
        ({"ingress": "everyone"}, "ingress 'everyone' is not one of: all, internal"),
        ({"cpu": 12}, "12 CPUs is more than a Cloud Run instance has (at most 8)"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"public": "yes"}, "public must be true or false"),
        ({"env": {"PORT": "1"}}, "env: PORT is set by Cloud Run or bfctl itself"),
        ({"env": {"BUILDFLOW_SECRET_X": "1"}}, "env: BUILDFLOW_SECRET_X is set by Cloud Run or bfctl itself"),
        ({"env": {"1X": "1"}}, "env: '1X' is not an environment variable name"),
        ({"network": ""}, "network must be the name or path of a VPC network"),
        ({"subnetwork": 3}, "subnetwork must be the name or path of a VPC subnetwork"),
        (
            {"network": "default", "vpc_egress": "some"},
            "vpc_egress 'some' is not one of: private-ranges-only, all-traffic",
        ),
        ({"vpc_egress": "all-traffic"}, "vpc_egress needs a network or subnetwork"),
    ],
)
def test_settings_cloud_run_would_refuse_are_refused_before_pulumi_runs(table: dict[str, Any], message: str) -> None:
    with pytest.raises(GCPSettingsError) as raised:
        service_settings(flow({}), table, {})
    assert message in str(raised.value)


def test_vpc_egress_reaches_a_private_network_only_when_asked() -> None:
    assert (service_settings(flow({}), {}, {}).network, service_settings(flow({}), {}, {}).subnetwork) == (None, None)
    settings = service_settings(flow({}), {"subnetwork": "run-subnet"}, {})
    assert (settings.network, settings.subnetwork, settings.vpc_egress) == (None, "run-subnet", "private-ranges-only")
    settings = service_settings(flow({}), {"network": "prod", "vpc_egress": "all-traffic"}, {})
    assert (settings.network, settings.vpc_egress) == ("prod", "all-traffic")


def test_env_flags_and_service_names() -> None:
    assert parse_env_flags(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(GCPSettingsError, match="write it as NAME=VALUE"):
        parse_env_flags(["A"])
    assert service_name("Shop_API", "dev", {}) == "shop-api-dev"
    assert service_name("9lives", "prod", {}) == "flow-9lives-prod"
    assert len(service_name("x" * 80, "dev", {})) == 49
    assert service_name("shop", "dev", {"service": "storefront"}) == "storefront"
    with pytest.raises(GCPSettingsError, match="is not one Cloud Run takes"):
        service_name("shop", "dev", {"service": "Store_Front"})
