#!/usr/bin/env python3
"""Checks that the operator files agree with the code. Run from the repository root:
`python3 .ci/check-operations.py`. Python 3.11 standard library only (no YAML parser: the rule file is
read line by line, as it is written).

1. Every metric an alert rule (etc/prometheus/alerts.yml) or a Grafana panel or variable
   (etc/grafana/*.json) queries is one the node describes: a `describe_counter!`, `describe_gauge!` or
   `describe_histogram!` call under sidecar/ or exex/, its name a string literal or a `const NAME: &str`
   (histogram series may carry `_bucket`, `_sum` or `_count`; `up` is Prometheus's own).
2. Every alert has `for`, a `severity` label, `summary`, `description` and `runbook_url`; its runbook is
   a heading of docs/operations.md named after the alert, and its runbook_url ends with that heading's
   GitHub anchor; every `###` entry of the Runbook section belongs to an alert.
3. Every metric the code records (`counter!`, `gauge!`, `histogram!`) under a literal or resolvable
   constant name has help text (a describe_* call), so /metrics explains every series.

Prints one line per failure and exits 1 if there is any.
"""

import json
import os
import re
import sys
from pathlib import Path

ALERTS = Path("etc/prometheus/alerts.yml")
GRAFANA = Path("etc/grafana")
OPERATIONS = Path("docs/operations.md")
CODE_ROOTS = [Path("sidecar"), Path("exex")]
# Series Prometheus makes itself, not the node.
EXTERNAL_METRICS = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

failures: list[str] = []


def fail(message: str) -> None:
    failures.append(message)


# ---------------------------------------------------------------------------------------------------
# Rust: the metric names the code describes and records.

MACRO = re.compile(r"\b(describe_counter|describe_gauge|describe_histogram|counter|gauge|histogram)!\s*\(\s*")
STRING = re.compile(r'"((?:\\.|[^"\\])*)"')
PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")
CONST = re.compile(r'\bconst\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]*)"\s*;')
LET = re.compile(r"\blet\s+([a-z_][a-z0-9_]*)\s*=\s*([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)\s*;")
ALIAS = re.compile(r"\b([a-z_][a-z0-9_]*)\s+as\s+([a-z_][a-z0-9_]*)\b")


def without_tests(text: str) -> str:
    """The file without its `#[cfg(test)]` module (at the end, by this repository's convention) and
    without comment lines (doc examples are not recordings)."""
    index = text.find("#[cfg(test)]\nmod tests")
    if index >= 0:
        text = text[:index]
    return "\n".join("" if line.lstrip().startswith("//") else line for line in text.split("\n"))


class Source:
    def __init__(self, path: Path, crate: str, text: str):
        self.path = path
        self.crate = crate
        self.text = text
        self.lines = text.split("\n")

    def line_of(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1


def crate_of(path: Path, crates: dict[Path, str]) -> str:
    for parent in path.parents:
        if parent in crates:
            return crates[parent]
    return ""


def load_sources() -> list[Source]:
    crates: dict[Path, str] = {}
    for root in CODE_ROOTS:
        for manifest in root.rglob("Cargo.toml"):
            if "target" in manifest.parts:
                continue
            name = re.search(r'(?m)^name\s*=\s*"([^"]+)"', manifest.read_text(encoding="utf-8"))
            if name:
                crates[manifest.parent] = name.group(1).replace("-", "_")
    sources = []
    for root in CODE_ROOTS:
        for path in sorted(root.rglob("*.rs")):
            if "target" in path.parts or "tests" in path.parts or "benches" in path.parts:
                continue
            text = without_tests(path.read_text(encoding="utf-8"))
            sources.append(Source(path, crate_of(path, crates), text))
    return sources


class Constants:
    """Every `const NAME: &str = "..."` of the scanned code, to resolve a name given as a path."""

    def __init__(self, sources: list[Source]):
        self.by_name: dict[str, list[tuple[Source, str]]] = {}
        for source in sources:
            for match in CONST.finditer(source.text):
                self.by_name.setdefault(match.group(1), []).append((source, match.group(2)))

    def resolve(self, source: Source, path: str, offset: int, depth: int = 0) -> list[str]:
        """The values `path` may name where it is used: one when it resolves, several when it is
        ambiguous, none when it is not a string constant of the scanned code."""
        segments = path.split("::")
        name = segments[-1]
        if len(segments) == 1 and name.islower() and depth < 3:
            # A local binding: `let settled = some::CONST;` earlier in the file.
            bindings = [m for m in LET.finditer(source.text, 0, offset) if m.group(1) == name]
            if bindings:
                return self.resolve(source, bindings[-1].group(2), bindings[-1].start(), depth + 1)
            return []
        candidates = self.by_name.get(name, [])
        if not candidates:
            return []
        hints = set(segments[:-1])
        # `m::X` with `use ...::metrics as m`: the module's name is the hint.
        aliases = {alias: module for module, alias in ALIAS.findall(source.text)}
        hints |= {aliases[s] for s in segments[:-1] if s in aliases}
        first = segments[0] if len(segments) > 1 else None
        relative = first is None or first in ("crate", "self", "super") or first in aliases
        best, values = -1, set()
        for where, value in candidates:
            score = 0
            if where is source:
                score += 8
            if (relative and where.crate == source.crate) or (first == where.crate):
                score += 4
            parts = set(where.path.with_suffix("").parts)
            score += sum(1 for hint in hints if hint in parts)
            if score > best:
                best, values = score, {value}
            elif score == best:
                values.add(value)
        return sorted(values)


def macro_name_argument(source: Source, start: int) -> tuple[str, str] | None:
    """The first argument of the macro call whose arguments start at `start`: ("literal", value) or
    ("path", path), or None for anything else (a format!, an expression)."""
    literal = STRING.match(source.text, start)
    if literal:
        return "literal", literal.group(1)
    path = PATH.match(source.text, start)
    if path:
        rest = source.text[path.end():].lstrip()
        if rest.startswith((",", ")")):
            return "path", path.group(0)
    return None


def scan_code(sources: list[Source]) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """(described name -> kind, [(recorded name, kind, "file:line")])."""
    constants = Constants(sources)
    described: dict[str, str] = {}
    recorded: list[tuple[str, str, str]] = []
    for source in sources:
        for match in MACRO.finditer(source.text):
            macro = match.group(1)
            kind = macro.removeprefix("describe_")
            where = f"{source.path}:{source.line_of(match.start())}"
            argument = macro_name_argument(source, match.end())
            if argument is None:
                if macro.startswith("describe_"):
                    fail(f"{where}: {macro}! names its metric with an expression this check cannot read")
                else:
                    print(f"note: {where}: {macro}! names its metric with an expression; not checked")
                continue
            form, text = argument
            names = [text] if form == "literal" else constants.resolve(source, text, match.start())
            if not names:
                print(f"note: {where}: {macro}!({text}) is not a string constant of sidecar/ or exex/; not checked")
                continue
            if len(names) > 1:
                print(f"note: {where}: {macro}!({text}) may be any of {', '.join(names)}; all are checked")
            for name in names:
                if macro.startswith("describe_"):
                    described[name] = kind
                else:
                    recorded.append((name, kind, where))
    return described, recorded


def check_help_text(described: dict[str, str], recorded: list[tuple[str, str, str]]) -> None:
    for name, kind, where in recorded:
        if name not in described:
            fail(f"{where}: {kind} {name} is recorded but has no help text (no describe_{kind}! call)")
        elif described[name] != kind:
            fail(f"{where}: {name} is recorded as a {kind} but described as a {described[name]}")


# ---------------------------------------------------------------------------------------------------
# PromQL: the metric names an expression selects.

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "inf", "nan", "start", "end",
}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
TOKEN = re.compile(r"\d[0-9A-Za-z_.]*|[A-Za-z_:][A-Za-z0-9_:]*")


def metrics_in(expr: str) -> set[str]:
    expr = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings
    expr = re.sub(r"#[^\n]*", "", expr)  # comments
    expr = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_]\w*|\[\[[^\]]*\]\]", "", expr)  # Grafana variables
    expr = re.sub(r"\{[^{}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\[\]]*\]", "", expr)  # ranges and subqueries
    # label_values(selector, label) and friends: only the selector names a metric.
    expr = re.sub(r"\b(label_values|query_result)\s*\(([^,()]*),[^()]*\)", r"\2", expr)
    expr = GROUPING.sub(" ", expr)
    names = set()
    for match in TOKEN.finditer(expr):
        token = match.group(0)
        if token[0].isdigit() or token.lower() in PROMQL_KEYWORDS:
            continue
        if re.match(r"\s*\(", expr[match.end():]):
            continue  # a function or an aggregation
        names.add(token)
    return names


def check_metric(name: str, described: dict[str, str], where: str) -> None:
    if name in EXTERNAL_METRICS or name in described:
        return
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and described.get(base) == "histogram":
            return
    fail(f"{where}: metric {name} is not described by the node (no describe_* call under sidecar/ or exex/)")


# ---------------------------------------------------------------------------------------------------
# alerts.yml, read line by line.

def yaml_scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def parse_alerts(path: Path) -> list[dict]:
    """Rules as dicts: alert or record, expr, for, labels, annotations, line."""
    lines = path.read_text(encoding="utf-8").split("\n")
    rules: list[dict] = []
    rule = None
    key_indent = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = re.match(r"^(\s*)-\s+(alert|record):\s*(.*)$", line)
        if start:
            key_indent = len(start.group(1)) + 2
            rule = {start.group(2): yaml_scalar(start.group(3)), "labels": {}, "annotations": {}, "line": i + 1}
            rules.append(rule)
            i += 1
            continue
        if rule is not None and indent_of(line) == key_indent:
            key, _, value = stripped.partition(":")
            value = value.strip()
            if value in ("|", "|-", "|+", ">", ">-", ">+"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or indent_of(lines[i]) > key_indent):
                    body.append(lines[i].strip())
                    i += 1
                rule[key] = ("\n" if value.startswith("|") else " ").join(body).strip()
                continue
            if key in ("labels", "annotations") and not value:
                i += 1
                while i < len(lines) and (not lines[i].strip() or indent_of(lines[i]) > key_indent):
                    child = lines[i].strip()
                    if child and not child.startswith("#"):
                        name, _, text = child.partition(":")
                        rule[key][name.strip()] = yaml_scalar(text)
                    i += 1
                continue
            rule[key] = yaml_scalar(value)
        elif rule is not None and indent_of(line) < key_indent:
            rule = None
        i += 1
    return rules


# ---------------------------------------------------------------------------------------------------
# docs/operations.md: headings and their GitHub anchors.

def github_anchor(heading: str) -> str:
    text = re.sub(r"[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str, int]]:
    """(level, text, line) of every Markdown heading outside code fences."""
    out = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            out.append((len(match.group(1)), match.group(2), number))
    return out


def check_runbooks(rules: list[dict]) -> None:
    if not OPERATIONS.exists():
        fail(f"{OPERATIONS}: missing (the runbook of every alert)")
        return
    all_headings = headings(OPERATIONS)
    by_text = {}
    anchors: dict[str, int] = {}
    for _, text, line in all_headings:
        anchor = github_anchor(text)
        if anchor in anchors:
            fail(f"{OPERATIONS}:{line}: heading '{text}' repeats the anchor #{anchor} of line {anchors[anchor]}")
        anchors.setdefault(anchor, line)
        by_text[text.strip("` ")] = (anchor, line)
    alerts = [r for r in rules if "alert" in r]
    names = {r["alert"] for r in alerts}
    prefixes = set()
    for rule in alerts:
        name, where = rule["alert"], f"{ALERTS}:{rule['line']}"
        for field in ("expr", "for"):
            if not rule.get(field):
                fail(f"{where}: alert {name} has no `{field}`")
        if not rule["labels"].get("severity"):
            fail(f"{where}: alert {name} has no severity label")
        for field in ("summary", "description", "runbook_url"):
            if not rule["annotations"].get(field):
                fail(f"{where}: alert {name} has no `{field}` annotation")
        url = rule["annotations"].get("runbook_url", "")
        if name not in by_text:
            fail(f"{where}: alert {name} has no runbook: add a heading '### {name}' to {OPERATIONS}")
            continue
        anchor, _ = by_text[name]
        if not url.endswith(f"{OPERATIONS.as_posix()}#{anchor}"):
            fail(f"{where}: alert {name}: runbook_url {url!r} should end with {OPERATIONS.as_posix()}#{anchor}")
        prefixes.add(url.rsplit("#", 1)[0])
    if len(prefixes) > 1:
        fail(f"{ALERTS}: runbook_url points at different documents: {', '.join(sorted(prefixes))}")
    # Runbook entries without an alert (renamed or removed rules).
    in_runbook = False
    for level, text, line in all_headings:
        if level == 2:
            in_runbook = text.strip().lower() == "runbook"
        elif level == 3 and in_runbook and text.strip("` ") not in names:
            fail(f"{OPERATIONS}:{line}: runbook entry '{text}' matches no alert in {ALERTS}")


# ---------------------------------------------------------------------------------------------------
# Grafana dashboards.

def grafana_queries(node, trail="") -> list[tuple[str, str]]:
    """(where, expr) of every panel target and variable query in a dashboard JSON."""
    out = []
    if isinstance(node, dict):
        title = node.get("title") or node.get("name") or ""
        here = f"{trail}/{title}" if title else trail
        if isinstance(node.get("expr"), str):
            out.append((here, node["expr"]))
        if node.get("type") == "query" and "query" in node:
            query = node["query"]
            text = query.get("query") if isinstance(query, dict) else query
            if isinstance(text, str):
                out.append((here, text))
        for key, value in node.items():
            if key not in ("expr",):
                out.extend(grafana_queries(value, here))
    elif isinstance(node, list):
        for value in node:
            out.extend(grafana_queries(value, trail))
    return out


def main() -> int:
    if not Path("sidecar").is_dir():
        print("run from the repository root: python3 .ci/check-operations.py", file=sys.stderr)
        return 2
    described, recorded = scan_code(load_sources())
    if not described:
        fail("no describe_counter!/describe_gauge!/describe_histogram! call found under sidecar/ or exex/")
    check_help_text(described, recorded)

    rules = parse_alerts(ALERTS) if ALERTS.exists() else []
    if not rules:
        fail(f"{ALERTS}: no alert rules found")
    for rule in rules:
        for name in sorted(metrics_in(rule.get("expr", ""))):
            check_metric(name, described, f"{ALERTS}:{rule['line']} ({rule.get('alert') or rule.get('record')})")
    check_runbooks(rules)

    dashboards = sorted(GRAFANA.glob("*.json"))
    if not dashboards:
        fail(f"{GRAFANA}: no dashboard")
    for path in dashboards:
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            fail(f"{path}: not JSON: {error}")
            continue
        queries = grafana_queries(dashboard)
        if not queries:
            fail(f"{path}: no queries found")
        for where, expr in queries:
            for name in sorted(metrics_in(expr)):
                check_metric(name, described, f"{path} ({where.lstrip('/')})")

    for message in failures:
        print(f"FAIL {message}")
    if failures:
        print(f"\n{len(failures)} problem(s) in the operator files (alerts, dashboards, runbooks, help text)")
        return 1
    alerts = sum(1 for r in rules if "alert" in r)
    print(
        f"ok: {len(described)} described metrics, {len(recorded)} recordings with help text, "
        f"{alerts} alerts with runbooks, {len(dashboards)} dashboard(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
