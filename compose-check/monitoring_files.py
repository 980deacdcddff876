"""The monitoring profile's files, for the services compose-check cannot run (no statsd_exporter
or Grafana binary in any registry this machine reaches): parsed with the strictest parsers at
hand and checked against the shape their programs read. Run inside the project's image
(PyYAML and jsonschema are Airflow's dependencies):

    python monitoring_files.py PROJECT_DIR

prints one line per file and exits non-zero on the first problem. Strict means: YAML safe
loading that refuses duplicate keys (PyYAML keeps the last one silently; Go's yaml.v2 and
Grafana refuse them), JSON that refuses duplicate keys and NaN/Infinity, and a JSON schema per
file that refuses keys the program does not know (statsd_exporter reads its mapping strictly).
Prometheus's own file is checked by `promtool check config`, not here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml


class StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key twice in one mapping."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping's own keys must differ (keys merged in with `<<` may be overridden)."""
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)  # noqa: S506 (a SafeLoader)


def load_json(path: Path):
    def pairs(items):
        keys = [key for key, _ in items]
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        if duplicated:
            raise ValueError(f"duplicate keys {duplicated}")
        return dict(items)

    def constant(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs, parse_constant=constant)


DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"

# statsd_exporter's mapping file (pkg/mapper: MappingConfig, MetricMapping, MapperConfigDefaults)
HISTOGRAM_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "buckets": {"type": "array", "items": {"type": "number"}, "minItems": 1},
        "native_histogram_bucket_factor": {"type": "number"},
        "native_histogram_max_buckets": {"type": "integer"},
    },
}
SUMMARY_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "quantiles": {"type": "array"},
        "max_age": {"type": "string", "pattern": DURATION},
        "age_buckets": {"type": "integer"},
        "buf_cap": {"type": "integer"},
    },
}
OBSERVER = {"enum": ["histogram", "summary"]}
MAPPING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "observer_type": OBSERVER,
                "histogram_options": HISTOGRAM_OPTIONS,
                "summary_options": SUMMARY_OPTIONS,
                "match_type": {"enum": ["glob", "regex"]},
                "glob_disable_ordering": {"type": "boolean"},
                "ttl": {"type": "string", "pattern": DURATION},
            },
        },
        "mappings": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["match", "name"],
                "properties": {
                    "match": {"type": "string", "minLength": 1},
                    "name": {"type": "string", "minLength": 1},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "honor_labels": {"type": "boolean"},
                    "observer_type": OBSERVER,
                    "histogram_options": HISTOGRAM_OPTIONS,
                    "summary_options": SUMMARY_OPTIONS,
                    "match_type": {"enum": ["glob", "regex"]},
                    "help": {"type": "string"},
                    "action": {"enum": ["map", "drop"]},
                    "match_metric_type": {"enum": ["counter", "gauge", "observer"]},
                    "ttl": {"type": "string", "pattern": DURATION},
                    "scale": {"type": "number"},
                },
            },
        },
    },
    "required": ["mappings"],
}

DATASOURCES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "datasources"],
    "properties": {
        "apiVersion": {"const": 1},
        "deleteDatasources": {"type": "array"},
        "prune": {"type": "boolean"},
        "datasources": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "type", "uid", "url"],
                "additionalProperties": False,
                "properties": {
                    **{key: {"type": "string"} for key in ("name", "type", "uid", "url", "user", "database")},
                    "access": {"enum": ["proxy", "direct"]},
                    "orgId": {"type": "integer"},
                    "isDefault": {"type": "boolean"},
                    "editable": {"type": "boolean"},
                    "basicAuth": {"type": "boolean"},
                    "basicAuthUser": {"type": "string"},
                    "withCredentials": {"type": "boolean"},
                    "version": {"type": "integer"},
                    "jsonData": {"type": "object"},
                    "secureJsonData": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
}

DASHBOARD_PROVIDERS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "providers"],
    "properties": {
        "apiVersion": {"const": 1},
        "providers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "type", "options"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "orgId": {"type": "integer"},
                    "folder": {"type": "string"},
                    "folderUid": {"type": "string"},
                    "type": {"const": "file"},
                    "disableDeletion": {"type": "boolean"},
                    "updateIntervalSeconds": {"type": "integer"},
                    "allowUiUpdates": {"type": "boolean"},
                    "options": {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "path": {"type": "string"},
                            "foldersFromFilesStructure": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "panels", "schemaVersion"],
    "properties": {
        "uid": {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"type": "string"},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {key: {"type": "integer", "minimum": 0} for key in "hwxy"},
                    },
                    "targets": {"type": "array", "items": {"type": "object", "required": ["refId"]}},
                },
            },
        },
        "templating": {"type": "object", "properties": {"list": {"type": "array"}}},
    },
}


class Problem(Exception):
    pass


def validate(document, schema: dict, path: Path) -> None:
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        raise Problem(
            f"{path}: "
            + "; ".join(f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:5])
        )


def template_regex(name: str) -> re.Pattern:
    """A mapping's `name` (with ${1}, ${2} from the glob) as a regex over metric names."""
    return re.compile(
        "^" + re.sub(r"\\\$\\\{[0-9]+\\\}", "[a-zA-Z0-9_]+", re.escape(name)) + "(_bucket|_sum|_count)?$"
    )


def check_mapping(root: Path) -> tuple[str, list[re.Pattern]]:
    path = root / "monitoring/statsd-exporter/mapping.yml"
    config = load_yaml(path)
    validate(config, MAPPING_SCHEMA, path)
    buckets = config.get("defaults", {}).get("histogram_options", {}).get("buckets", [])
    if buckets != sorted(set(buckets)):
        raise Problem(f"{path}: default histogram buckets are not strictly increasing: {buckets}")
    names = []
    for index, rule in enumerate(config["mappings"]):
        stars = rule["match"].count("*")
        used = [int(n) for n in re.findall(r"\$\{([0-9]+)\}", rule["name"])]
        if used and max(used) > stars:
            raise Problem(f"{path}: mapping {index} names ${{{max(used)}}} but its match has {stars} '*'")
        if rule.get("action", "map") == "map":
            if not re.match(METRIC_NAME, re.sub(r"\$\{[0-9]+\}", "x", rule["name"])):
                raise Problem(f"{path}: mapping {index}: {rule['name']!r} is not a Prometheus metric name")
            names.append(template_regex(rule["name"]))
    return f"{path.relative_to(root)}: {len(config['mappings'])} mappings", names


def check_datasources(root: Path, compose: dict) -> tuple[str, set[str]]:
    path = root / "monitoring/grafana/provisioning/datasources/datasources.yml"
    config = load_yaml(path)
    validate(config, DATASOURCES_SCHEMA, path)
    sources = config["datasources"]
    uids = [source["uid"] for source in sources]
    if len(set(uids)) != len(uids) or sum(bool(s.get("isDefault")) for s in sources) != 1:
        raise Problem(f"{path}: datasource uids must be unique and exactly one the default")
    grafana_env = compose["services"]["grafana"].get("environment", {})
    for source in sources:
        url = source["url"] if "://" in source["url"] else f"tcp://{source['url']}"
        host = urlsplit(url).hostname
        if host not in compose["services"]:
            raise Problem(
                f"{path}: datasource {source['name']} points at {host}, no service of docker-compose.yaml"
            )
        used = re.findall(r"\$([A-Z_][A-Z0-9_]*)", json.dumps(source))
        missing = [name for name in used if name not in grafana_env]
        if missing:
            raise Problem(
                f"{path}: datasource {source['name']} reads {missing}, not set for the grafana service"
            )
    return f"{path.relative_to(root)}: {len(sources)} datasources", set(uids)


def check_dashboard_provider(root: Path, compose: dict) -> str:
    path = root / "monitoring/grafana/provisioning/dashboards/dashboards.yml"
    config = load_yaml(path)
    validate(config, DASHBOARD_PROVIDERS_SCHEMA, path)
    volumes = [
        re.sub(r"\$\{[^}:]*:?-([^}]*)\}", r"\1", str(v)) for v in compose["services"]["grafana"]["volumes"]
    ]
    targets = {volume.split(":")[1] for volume in volumes}
    for provider in config["providers"]:
        if provider["options"]["path"] not in targets:
            raise Problem(
                f"{path}: provider {provider['name']} reads {provider['options']['path']}, not mounted"
            )
    return f"{path.relative_to(root)}: {len(config['providers'])} provider(s)"


def check_dashboard(root: Path, uids: set[str], series: list[re.Pattern]) -> str:
    path = root / "monitoring/grafana/dashboards/zuora-workflow-sync.json"
    dashboard = load_json(path)
    validate(dashboard, DASHBOARD_SCHEMA, path)
    ids = [panel["id"] for panel in dashboard["panels"]]
    if len(set(ids)) != len(ids):
        raise Problem(f"{path}: panel ids repeat")
    queried = set()
    for panel in dashboard["panels"]:
        for target in [panel, *panel.get("targets", [])]:
            source = target.get("datasource")
            if isinstance(source, dict) and source.get("uid") not in uids:
                raise Problem(
                    f"{path}: panel {panel['id']} reads datasource {source.get('uid')!r}, not provisioned"
                )
        for target in panel.get("targets", []):
            queried |= set(re.findall(r"\b((?:zuora_sync|airflow)_[a-zA-Z0-9_]+)\b", target.get("expr", "")))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        queried |= set(re.findall(r"\b((?:zuora_sync|airflow)_[a-zA-Z0-9_]+)\b", text))
    unmapped = sorted(name for name in queried if not any(p.match(name) for p in series))
    if unmapped:
        raise Problem(f"{path}: queries series no mapping of mapping.yml makes: {unmapped}")
    return f"{path.relative_to(root)}: {len(ids)} panels, {len(queried)} series, each made by a mapping"


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else ".").resolve()
    try:
        compose = load_yaml(root / "docker-compose.yaml")
        mapping_line, series = check_mapping(root)
        sources_line, uids = check_datasources(root, compose)
        lines = [
            mapping_line,
            sources_line,
            check_dashboard_provider(root, compose),
            check_dashboard(root, uids, series),
        ]
    except (Problem, yaml.YAMLError, ValueError, OSError, KeyError) as problem:
        print(f"PROBLEM {problem}")
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
