"""The pure parts of services/common/bus.py: NATS URL lists and the replica count chosen from what the
connected server announces (its INFO). The rest of bus.py runs against real servers in
tests/integration/test_bus.py and test_cluster.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.common import bus
from services.common.settings import ServiceSettings

pytestmark = pytest.mark.unit


def client(info: dict) -> SimpleNamespace:
    return SimpleNamespace(_server_info=info)


def test_server_urls_take_one_or_a_comma_separated_list() -> None:
    assert bus.server_urls("nats://a:4222") == ["nats://a:4222"]
    assert bus.server_urls(" nats://a:4222, nats://b:4222 ,,nats://c:4222") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    assert bus.server_urls(["nats://a:4222"]) == ["nats://a:4222"]
    with pytest.raises(ValueError):
        bus.server_urls(" , ")


def test_cluster_size_from_the_servers_info() -> None:
    assert bus.cluster_size(client({"server_name": "lone"})) == 1
    urls = ["10.0.0.1:4222", "10.0.0.2:4222", "10.0.0.3:4222"]
    assert bus.cluster_size(client({"cluster": "vbg", "connect_urls": urls})) == 3
    assert bus.cluster_size(client({"cluster": "vbg", "connect_urls": urls[:2] + urls[:1]})) == 2
    assert bus.cluster_size(client({"cluster": "vbg"})) == 1  # no gossip yet: counts as one
    assert bus.cluster_size(SimpleNamespace()) == 1


def test_replicas_default_to_one_alone_and_three_in_a_cluster() -> None:
    lone = client({})
    five = client({"cluster": "vbg", "connect_urls": [f"n{i}:4222" for i in range(5)]})
    two = client({"cluster": "vbg", "connect_urls": ["n1:4222", "n2:4222"]})
    assert bus.auto_replicas(lone) == 1
    assert bus.auto_replicas(five) == 3  # three copies pay off; more only slow writes
    assert bus.auto_replicas(two) == 2  # a node away at start: as many as there are; a later start scales up
    assert bus.auto_replicas(lone, setting=3) == 3  # an explicit setting wins (and is checked on create)


def test_settings_read_a_url_list_and_a_replica_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBG_NATS_URL", "nats://n1:4222,nats://n2:4222,nats://n3:4222")
    monkeypatch.setenv("VBG_NATS_REPLICAS", "3")
    s = ServiceSettings()
    assert len(bus.server_urls(s.nats_url)) == 3 and s.nats_replicas == 3
    monkeypatch.delenv("VBG_NATS_REPLICAS")
    assert ServiceSettings().nats_replicas == 0  # automatic
