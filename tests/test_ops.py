"""Checks for the ops/ bundle (SPEC §8): Prometheus config and alert rules, the Grafana dashboard
and its provisioning. Every PromQL expression may only name metrics that ``api.metrics`` really
exports, so renaming a metric without updating ops/ fails here instead of in a blank panel."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from api.metrics import REGISTRY  # noqa: E402

OPS = Path(__file__).resolve().parent.parent / "ops"
PROM_CONFIG = OPS / "prometheus" / "prometheus.yml"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARDS = OPS / "grafana" / "dashboards"
DASHBOARD = DASHBOARDS / "justtrades.json"
PROVISIONING = OPS / "grafana" / "provisioning"
README = OPS / "README.md"

#: Series Prometheus makes up itself for every target (not in our registry).
PROMETHEUS_BUILTINS = frozenset({"up"})

#: Suffixes a metric family's samples carry in the exposition format, by family type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    }
)


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (a lexer-level approximation: enough for
    the expressions we write, and deliberately strict: an unknown identifier counts as a metric)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "", s)  # Grafana variables ($__rate_interval, ${host})
    s = re.sub(r"\{[^{}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors and subqueries
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"\boffset\s+-?\w+", "", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        before = s[m.start() - 1] if m.start() else " "
        after = s[m.end() :].lstrip()
        if before.isdigit() or before == ".":  # 1e3, 0.5e-2
            continue
        if after.startswith("(") or m.group().lower() in KEYWORDS:  # function call / keyword
            continue
        names.add(m.group())
    return names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            "histogram_quantile(0.99, sum by (le) (rate(jt_webhook_seconds_bucket[5m]))) > 1"
            " and sum(rate(jt_webhook_seconds_count[5m])) > 0",
            {"jt_webhook_seconds_bucket", "jt_webhook_seconds_count"},
        ),
        (
            'sum by (host) (rate(jt_host_events{kind="signals", host=~"$host"}[$__rate_interval]))',
            {"jt_host_events"},
        ),
        ("jt_actor_up == 0", {"jt_actor_up"}),
        ("rate(foo_total[1m]) / on (job) group_left bar offset 5m", {"foo_total", "bar"}),
        ("1e3 * sort_desc(x)", {"x"}),
    ],
)
def test_metric_name_extraction(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    out = []
    for p in panels:
        out.append(p)
        out.extend(all_panels(p.get("panels", [])))
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard_exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(dash["panels"])
        for target in panel.get("targets", [])
    ]


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted([*OPS.rglob("*.yml"), *OPS.rglob("*.yaml")]), ids=lambda p: str(p.name)
)
def test_yaml_parses(path: Path) -> None:
    assert isinstance(load_yaml(path), dict)


def test_dashboard_json_parses(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "justtrades"
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard.get("id") is None  # importable into any Grafana


# -- Prometheus ------------------------------------------------------------------------------


def test_scrape_config() -> None:
    cfg = load_yaml(PROM_CONFIG)
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    job = jobs["justtrades"]
    assert job.get("scrape_interval", cfg["global"]["scrape_interval"]) == "5s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:8000"]
    for rule_file in cfg["rule_files"]:
        assert (PROM_CONFIG.parent / rule_file).is_file(), rule_file


def test_alert_rules_are_complete(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names))
    for rule in alert_rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
    # the alerts the runbook promises (ops/README.md)
    exprs = " ".join(rule["expr"] for rule in alert_rules)
    for metric in (
        "jt_actor_up",
        "jt_actor_restarts",
        "jt_feed_last_tick_age_seconds",
        "jt_webhook_seconds_bucket",
        "jt_webhooks_total",
    ):
        assert metric in exprs, metric


def test_alert_exprs_use_exported_metrics(alert_rules: list[dict[str, Any]]) -> None:
    known = exported_names() | PROMETHEUS_BUILTINS
    for rule in alert_rules:
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= known, (rule["alert"], used - known)


# -- Grafana ---------------------------------------------------------------------------------


def test_dashboard_exprs_use_exported_metrics(dashboard: dict[str, Any]) -> None:
    known = exported_names()
    exprs = dashboard_exprs(dashboard)
    assert exprs
    for title, expr in exprs:
        used = metric_names(expr)
        assert used, (title, expr)
        assert used <= known, (title, used - known)


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    known = exported_names()
    for var in variables.values():
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        assert m, query
        assert m.group(1) in known, query
        assert var["datasource"]["uid"] == "${datasource}"


def test_panels_have_title_datasource_and_unique_ids(dashboard: dict[str, Any]) -> None:
    panels = all_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), ids
    for p in panels:
        assert p.get("title"), p["id"]
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] == "row":  # rows only group panels; they run no query
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


def test_counter_gauges_explained(dashboard: dict[str, Any]) -> None:
    """The cumulative counters exported as gauges are read with rate(), and the panel says why."""
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            if re.search(r"\bjt_(host_events|feed_ticks)\b", expr):
                assert "rate(" in expr, (panel["title"], expr)
                assert "rate()" in panel["description"], panel["title"]


def test_provisioning_points_at_dashboards() -> None:
    ds = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    assert [d["type"] for d in ds["datasources"]] == ["prometheus"]
    providers = load_yaml(PROVISIONING / "dashboards" / "justtrades.yml")["providers"]
    assert len(providers) == 1
    path = providers[0]["options"]["path"].replace("${JT_OPS_DIR}", str(OPS))
    assert Path(path).resolve() == DASHBOARDS.resolve()
    assert list(DASHBOARDS.glob("*.json")) == [DASHBOARD]


def test_readme_describes_every_panel(dashboard: dict[str, Any]) -> None:
    text = README.read_text()
    for panel in all_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["title"] in text, panel["title"]
    for rule in load_yaml(ALERTS)["groups"]:
        for r in rule["rules"]:
            assert r["alert"] in text, r["alert"]
