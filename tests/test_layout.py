"""The package's shape: no import loops between its modules, no references to documents that are not
in the repository, no test-only hooks in library code. Static (AST) checks: nothing is imported."""
import ast
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "direid_plugin")


def _modules():
    """{dotted module name: source path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path, package, modules):
    """Package modules imported anywhere in a file (module level or inside functions)."""
    targets = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [node.module])
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        targets.update(name for name in names if name in modules)
    return targets


def import_graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
        # A module's own package __init__ runs first anyway; an edge to it is not a dependency of this module.
        graph[name] = {t for t in _imports(path, package, modules) if t != name and not name.startswith(t + ".")}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_loops():
    graph = import_graph()
    assert "direid_plugin.engines.base" in graph and "direid_plugin.weights" in graph["direid_plugin.engines.base"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_library_code_cites_only_documents_in_the_repository():
    cited = set()
    for path in _modules().values():
        cited |= {(os.path.relpath(path, REPO), m) for m in re.findall(r"\b(METHOD_SPEC|TORCHREID_NOTES|DESIGN)\b",
                                                                       open(path).read())}
    assert not cited, sorted(cited)


def test_no_test_hooks_in_library_code():
    hooks = [os.path.relpath(p, REPO) for p in _modules().values() if re.search(r"DIREID_TEST_|test hook", open(p).read())]
    assert hooks == []
