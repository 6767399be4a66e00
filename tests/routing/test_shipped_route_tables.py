"""The route tables the project ships still route as documented now that `match` is a search.

`make run` (config/demo.toml), `make bench` (bench/gateway-bench.toml) and the integration tests'
generated configuration are loaded by the real config loader and routed by the real `decide`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.routing import decide
from gateway.routing.static import RULE_NO_MATCH
from tests.integration.conftest import write_config

REPO = Path(__file__).resolve().parents[2]


def _integration_config(tmp_path: Path) -> GatewayConfig:
    path = tmp_path / "gateway.toml"
    write_config(path, 15060, 18080, 15090, 15091)
    return load_config(path)


def _shipped(name: str, tmp_path: Path) -> GatewayConfig:
    if name == "integration":
        return _integration_config(tmp_path)
    return load_config(REPO / name)


SHIPPED = ["config/demo.toml", "bench/gateway-bench.toml", "integration"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_route_is_anchored_at_both_ends(name: str, tmp_path: Path) -> None:
    """With search semantics an unanchored rule would also match inside longer users: none may ship."""
    routes = _shipped(name, tmp_path).sip.static_routes
    assert routes
    for route in routes:
        assert route.pattern.pattern.startswith("^") and route.pattern.pattern.endswith("$"), route


@pytest.mark.parametrize(
    ("name", "user", "rule_id"),
    [
        ("config/demo.toml", "1001", "extensions"),
        ("config/demo.toml", "10010", "trunk"),
        ("config/demo.toml", "0601020304", "trunk"),
        ("bench/gateway-bench.toml", "0601020304", "bench-uas"),
        ("bench/gateway-bench.toml", "1001", "bench-uas"),
        ("integration", "1001", "extensions"),
        ("integration", "2001", "trunk"),
        ("integration", "3001", "tcp-trunk"),
        ("integration", "20010", RULE_NO_MATCH),
        ("integration", "12001", RULE_NO_MATCH),
        ("integration", "4001", RULE_NO_MATCH),
    ],
)
def test_shipped_tables_route_users_as_before(name: str, user: str, rule_id: str, tmp_path: Path) -> None:
    routes = _shipped(name, tmp_path).sip.static_routes
    assert decide(user, routes, {user: [f"sip:{user}@127.0.0.1:5062"]}).rule_ids[0] == rule_id
