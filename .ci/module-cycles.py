#!/usr/bin/env python3
"""Fails when modules of one crate import each other in a cycle (a `use crate::a` in `b` and a
`use crate::b` in `a`, directly or through other modules; every item of a `crate::{…}` group counts), or when a crate's non-test code is longer than
the limit. Reads every workspace member's `src/` (test modules, `#[cfg(test)]` to the end of the file,
excluded). Run from the repository root: `python3 .ci/module-cycles.py`.
"""

import json
import os
import re
import subprocess
import sys

LIMIT = 2_500  # non-test, non-blank, non-comment lines per crate


def members():
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--no-deps", "--format-version", "1"]))
    for package in meta["packages"]:
        for target in package["targets"]:
            if "lib" in target["kind"] or "bin" in target["kind"]:
                yield package["name"], os.path.dirname(target["src_path"])
                break


def module_of(src_dir, path):
    rel = os.path.relpath(path, src_dir)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text):
    index = text.find("#[cfg(test)]\nmod tests")
    return text if index < 0 else text[:index]


def paths(text):
    """Every `(crate|super, first module)` a path names, brace groups included:
    `use crate::{Type, a::b, c}` names `a` and `c` (and `Type`, which is no module)."""
    for match in re.finditer(r"\b(crate|super)::", text):
        kind, rest = match.group(1), text[match.end():]
        if not rest.startswith("{"):
            name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", rest)
            if name:
                yield kind, name.group(0)
            continue
        depth, item, items = 0, "", []
        for char in rest:
            if char == "{":
                depth += 1
                if depth == 1:
                    continue
            elif char == "}":
                depth -= 1
                if depth == 0:
                    items.append(item)
                    break
            elif char == "," and depth == 1:
                items.append(item)
                item = ""
                continue
            if depth >= 1:
                item += char
        for entry in items:
            name = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", entry)
            if name:
                yield kind, name.group(1)


def edges(src_dir):
    graph, lines = {}, 0
    for root, _, files in os.walk(src_dir):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            module = module_of(src_dir, path)
            text = strip_tests(open(path, encoding="utf-8").read())
            lines += sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("//"))
            top = module[:1]
            if not top:
                continue  # the crate root may name every module
            for kind, target in paths(text):
                # `super::x` from a nested module stays inside the same top-level module.
                if kind == "super" and len(module) > 1:
                    continue
                is_module = os.path.exists(os.path.join(src_dir, target + ".rs")) or os.path.isdir(
                    os.path.join(src_dir, target)
                )
                if is_module and (target,) != top:
                    graph.setdefault(top, set()).add((target,))
    return graph, lines


def cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main():
    failed = False
    for name, src_dir in sorted(set(members())):
        graph, lines = edges(src_dir)
        found = cycle(graph)
        if found:
            failed = True
            print(f"{name}: module cycle " + " -> ".join("::".join(m) for m in found))
        if lines > LIMIT:
            failed = True
            print(f"{name}: {lines} lines of non-test code (limit {LIMIT}); split it by domain")
        elif not found:
            print(f"{name}: {lines} lines, no module cycle")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
