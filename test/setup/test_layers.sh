#!/usr/bin/env bash
# The Python layers of tools/ point one way (see docs/design.md): each module
# imports only modules of its own folder or of the layers below it, and no
# Python file of the repository edits sys.path (tools/ is a package, run
# from the repository root with `python3 -m`).  Prints TAP; names the
# offending imports.
set -u
cd "$(dirname "$0")/../.." || exit 1
exec python3 - <<'PY'
import ast
import os
import subprocess

# lowest first; a module may import its own layer or any layer before it,
# except the layers of one rank (train and eval), which never import each
# other
RANK = {"pgf": 0, "models": 1, "data": 2, "metrics": 3,
        "export": 4, "train": 5, "eval": 5}
files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                       capture_output=True, text=True, check=True).stdout.split()
files = [f for f in files if os.path.exists(f)]


def layer_of(module):
    """The layer of a dotted module name inside tools (None outside it)."""
    parts = module.split(".")
    if parts[0] != "tools" or len(parts) < 2:
        return None
    return "pgf" if parts[1] == "model_pb2" else parts[1]  # pgf.py's generated half


def imports(path, tree):
    """The absolute module names a file imports."""
    package = path.split("/")[:-1]  # a module's package is its folder
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            if name == "tools" or (node.level and not node.module):
                for alias in node.names:
                    yield node.lineno, name + "." + alias.name
            else:
                yield node.lineno, name


path_edits, wrong_way = [], []
for path in files:
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "path"
                and isinstance(node.value, ast.Name) and node.value.id == "sys"):
            path_edits.append("%s:%d" % (path, node.lineno))
    if not path.startswith("tools/"):
        continue
    own = layer_of(path[:-3].replace("/", "."))
    for line, name in imports(path, tree):
        target = layer_of(name)
        if name.split(".")[0] in ("bench", "test"):
            wrong_way.append("%s:%d imports %s (tools/ is below the tests and benchmarks)" % (path, line, name))
        if name.split(".")[0] != "tools" or own is None or target is None or target == own:
            continue
        if target not in RANK or own not in RANK:
            wrong_way.append("%s:%d imports %s (a layer the check does not know)" % (path, line, name))
        elif RANK[target] >= RANK[own]:
            wrong_way.append("%s:%d imports %s (layer %s is not below %s)" % (path, line, name, target, own))


def check(n, description, found):
    print(("ok %d - %s" if not found else "not ok %d - %s") % (n, description))
    for line in found[:10]:
        print("#   " + line)


print("1..3")
check(1, "no Python file edits sys.path", path_edits)
check(2, "tools/ imports point down: pgf < models < data < metrics < export < train, eval", wrong_way)
outside = [p for p in files if p.startswith("tools/") and layer_of(p[:-3].replace("/", ".")) not in RANK
           and not p.endswith("tools/__init__.py")]
check(3, "every module of tools/ is in a known layer", outside)
PY
