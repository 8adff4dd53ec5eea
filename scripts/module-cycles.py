#!/usr/bin/env python3
"""The `cycles` step: fails on any import cycle between the modules of a crate, in every crate.

Every target of every workspace package (`cargo metadata`) is walked from its root through its
`mod` declarations. Two graphs must be acyclic: the files, and for each folder the modules in it
(each taken with everything under it), so that no two folders import each other either.

A file depends on another when it names it by path: in a `use` (a tree, a glob, a re-export;
paths from the crate root, `self::`, `super::` or a child module), in any other `crate::`,
`$crate::`, `self::` or `super::` path, in a bare path through a child module, or by invoking a
`#[macro_export]` macro defined there. A path counts at the deepest module it names; a name
re-exported by name (`pub use a::B`) counts at the module it comes from (a glob re-export counts
at the module that re-exports). One kind of edge is not counted (the rule of issue 12): a file
using its parent module (its own folder's `mod.rs`, or `lib.rs`/`main.rs` for a top-level file)
through `super::`. Declaring a child module (`mod x;`) is not an edge either.

It first runs itself on small crates with a known answer (SELF_TESTS). Prints one libtest-style
line per crate target and a summary, and for each cycle its files, one
shortest cycle through them, and every edge inside it (file:line and the path written there).
Exit status 1 when a cycle is found. Usage: scripts/module-cycles.py [--quiet]
"""

import json
import os
import re
import subprocess
import sys
from collections import defaultdict, deque

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Blanks comments, string and char literals, keeping offsets and newlines."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif re.match(r'(b|c)?r#*"', text[i : i + 8]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            m = re.match(r'(b|c)?r(#*)"', text[i:])
            end = '"' + m.group(2)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            blank(i + 1, j - 1)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:])
            if m:
                blank(i + 1, i + m.end() - 1)
                i += m.end()
            else:
                i += 1  # a lifetime or a label
        else:
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


class Crate:
    def __init__(self, root):
        self.root = root
        self.modules = {}  # module path (tuple) -> file
        self.inline = set()  # module paths declared inline (`mod x { ... }`)
        self.files = {}  # file -> (module path, original text, stripped text)
        self.macros = {}  # exported macro name -> file
        self.load(root, ())
        self.index_reexports()

    def load(self, path, module):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        code = strip(text)
        self.modules[module] = path
        self.files[path] = (module, text, code)
        for m in re.finditer(r"#\s*\[\s*macro_export\s*\]\s*macro_rules\s*!\s*(" + IDENT + ")", code):
            self.macros[m.group(1)] = path
        # Child modules: `mod x;` (a file) and `mod x { ... }` (inline, possibly nested).
        stack = []  # (name, depth the block opened at)
        depth = 0
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*([;{])|[{}]", code):
            tok = m.group(0)
            if tok == "{":
                depth += 1
                continue
            if tok == "}":
                depth -= 1
                while stack and stack[-1][1] > depth:
                    stack.pop()
                continue
            name, kind = m.group(1), m.group(2)
            inner = module + tuple(s for s, _ in stack) + (name,)
            if kind == "{":
                depth += 1
                stack.append((name, depth))
                self.modules[inner] = path
                self.inline.add(inner)
                continue
            child = self.child_file(path, module, tuple(s for s, _ in stack), name, text, m.start())
            if child and os.path.exists(child):
                self.load(child, inner)

    def child_file(self, path, module, inline, name, text, pos):
        attr = re.search(r'#\s*\[\s*path\s*=\s*"([^"]+)"\s*\]\s*(#\s*\[[^\]]*\]\s*)*(pub(\([^)]*\))?\s+)?$', text[:pos])
        base = os.path.dirname(path)
        owns_dir = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs") or module == ()
        if not owns_dir:
            base = os.path.join(base, os.path.splitext(os.path.basename(path))[0])
        base = os.path.join(base, *inline)
        if attr:
            return os.path.normpath(os.path.join(os.path.dirname(path) if not inline else base, attr.group(1)))
        for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
            if os.path.exists(cand):
                return cand
        return None

    def index_reexports(self):
        """Names each module re-exports (`pub use`), so a path through one counts at its source."""
        self.reexports = defaultdict(dict)
        for path, (module, _, code) in self.files.items():
            for m in re.finditer(r"\bpub\s*(\([^)]*\))?\s*use\s+([^;]*);", code):
                for segs, name in use_paths(m.group(2)):
                    if name:
                        self.reexports[module][name] = segs

    def resolve(self, segs, here, hops=0):
        """The module a path written in module `here` names, or None if it is not of this crate."""
        if not segs:
            return None
        first = segs[0]
        if first in ("crate", "$crate"):
            base, rest = (), segs[1:]
        elif first == "self":
            base, rest = here, segs[1:]
        elif first == "super":
            base, rest = here, segs
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif here + (first,) in self.modules:
            base, rest = here, segs
        else:
            return None  # another crate, a prelude name, or an item of this module
        target = base
        for i, s in enumerate(rest):
            if target + (s,) in self.modules:
                target = target + (s,)
                continue
            source = self.reexports[target].get(s)
            if source and hops < 16:
                found = self.resolve(source + rest[i + 1 :], target, hops + 1)
                if found is not None:
                    return found
            break
        return target

    def file_module(self, module):
        """The module of the file that holds `module` (inline modules live in their parent's file)."""
        while module in self.inline:
            module = module[:-1]
        return module


def use_paths(tree):
    """Expands a `use` tree (the text after `use`, before `;`) into (segments, name bound) pairs."""
    tree = re.sub(r"\s+as\s+(" + IDENT + ")", r"@\1", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def parse(s, prefix):
        if "{" in s:
            head, rest = s.split("{", 1)
            body = rest[: rest.rfind("}")]
            head_segs = [x for x in head.split("::") if x]
            parts = [p for p in split_top(body) if p]
            for part in parts:
                parse(part, prefix + head_segs)
            if not parts:
                out.append((prefix + head_segs, None))
            return
        s, _, alias = s.partition("@")
        segs = [x for x in s.split("::") if x and x != "*"]
        glob = s.endswith("*")
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        name = None if glob or not segs else (alias or segs[-1])
        out.append((prefix + segs, name))

    parse(tree, [])
    return out


def split_top(body):
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def edges_of(crate, path):
    """Yields (target file, line, written path, exempt) for every reference in `path`."""
    file_mod, text, code = crate.files[path]

    # The module each offset is in (inline modules included), by brace depth.
    scopes = []  # (start, end, module)
    stack, depth = [(file_mod, 0, 0)], 0
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{|[{}]", code):
        tok = m.group(0)
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if len(stack) > 1 and stack[-1][1] > depth:
                mod, _, start = stack.pop()
                scopes.append((start, m.end(), mod))
        else:
            depth += 1
            stack.append((stack[-1][0] + (m.group(1),), depth, m.start()))

    def module_at(pos):
        best = file_mod
        best_len = -1
        for start, end, mod in scopes:
            if start <= pos < end and len(mod) > best_len:
                best, best_len = mod, len(mod)
        return best

    def resolve(segs, here, macro=False):
        target = crate.resolve(segs, here)
        if target is None:
            return None
        name = segs[-1]
        if (macro or target == ()) and name in crate.macros:
            return crate.macros[name], segs[0]
        return crate.modules[crate.file_module(target)], segs[0]

    parent_file = crate.modules.get(crate.file_module(file_mod[:-1])) if file_mod else None
    found = []
    use_spans = []
    for m in re.finditer(r"\buse\s+([^;]*);", code):
        use_spans.append((m.start(), m.end()))
        here = module_at(m.start())
        for segs, _ in use_paths(m.group(1)):
            r = resolve(segs, here)
            if r:
                found.append((r[0], m.start(), "::".join(segs), r[1]))
    in_use = lambda pos: any(a <= pos < b for a, b in use_spans)
    path_re = re.compile(
        r"(?<![\w:$])((?:\$crate|crate|self|super|" + IDENT + r")(?:\s*::\s*" + IDENT + r")+)(\s*!)?"
    )
    for m in path_re.finditer(code):
        if in_use(m.start()):
            continue
        segs = [s.strip() for s in m.group(1).split("::")]
        here = module_at(m.start())
        if segs[0] not in ("crate", "$crate", "self", "super") and here + (segs[0],) not in crate.modules:
            continue
        r = resolve(segs, here, macro=bool(m.group(2)))
        if r:
            found.append((r[0], m.start(), m.group(1).replace(" ", ""), r[1]))
    for name, mfile in crate.macros.items():
        for m in re.finditer(r"(?<![\w:$])" + re.escape(name) + r"\s*!", code):
            found.append((mfile, m.start(), name + "!", None))
    for target, pos, written, first in found:
        if target == path:
            continue
        exempt = first == "super" and target == parent_file
        yield target, line_of(code, pos), written, exempt


def sccs(nodes, graph):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def folder_sccs(crate, graph):
    """Cycles between the child modules of one module, each child taken with
    everything under it: two folders whose files import each other's
    (without a file cycle) count too. Imports of the parent itself do not."""
    out = []
    parents = {m[:-1] for m in crate.modules if m and m not in crate.inline}
    for parent in sorted(parents):
        def child(f):
            m = crate.files[f][0]
            return m[: len(parent) + 1] if m[: len(parent)] == parent and len(m) > len(parent) else None
        sub = defaultdict(set)
        edges = defaultdict(set)
        for a, targets in graph.items():
            ca = child(a)
            if ca is None:
                continue
            sub[ca]
            for b in targets:
                cb = child(b)
                if cb is not None and cb != ca:
                    sub[ca].add(cb)
                    edges[(ca, cb)].add((a, b))
        for comp in sccs(sub.keys(), sub):
            members = set(comp)
            inside = set()
            for (ca, cb), pairs in edges.items():
                if ca in members and cb in members:
                    inside |= pairs
            out.append((parent, comp, inside))
    return out


def shortest_cycle(comp, graph):
    members = set(comp)
    best = None
    for start in sorted(comp):
        prev, q = {start: None}, deque([start])
        while q:
            v = q.popleft()
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    cyc = [v]
                    while prev[cyc[-1]] is not None:
                        cyc.append(prev[cyc[-1]])
                    cyc.reverse()
                    if best is None or len(cyc) < len(best):
                        best = cyc
                    q.clear()
                    break
                if w not in prev:
                    prev[w] = v
                    q.append(w)
    return best + [best[0]]


def check(root, rel):
    """The crate at `root`, its file graph, where each edge is written, and its cycles."""
    crate = Crate(root)
    graph = defaultdict(set)
    detail = defaultdict(list)
    for f in crate.files:
        graph[f]
        for to, line, written, exempt in edges_of(crate, f):
            if exempt:
                continue
            graph[f].add(to)
            detail[(f, to)].append(f"{rel(f)}:{line}: {written}")
    return crate, graph, detail, sccs(crate.files.keys(), graph), folder_sccs(crate, graph)


# Small crates with a known answer: (name, files, a file cycle?, a folder cycle?).
SELF_TESTS = [
    ("crate:: both ways", {"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B;", "b.rs": "fn f() { crate::a::g(); }"}, True, True),
    ("child to its mod.rs by super:: is not counted", {"lib.rs": "mod f;", "f/mod.rs": "mod g; use g::G;", "f/g.rs": "use super::X;"}, False, False),
    ("the same through crate:: is", {"lib.rs": "mod f;", "f/mod.rs": "mod g; use g::G;", "f/g.rs": "use crate::f::X;"}, True, False),
    ("siblings through super::", {"lib.rs": "mod f;", "f/mod.rs": "mod g; mod h;", "f/g.rs": "use super::h::H;", "f/h.rs": "fn f() { super::g::run(); }"}, True, True),
    ("a re-export counts at its source", {"lib.rs": "mod a; mod b; pub use a::A;", "a.rs": "use crate::b::B;", "b.rs": "use crate::A;"}, True, True),
    ("use trees, self and aliases", {"lib.rs": "mod a; mod b;", "a.rs": "use crate::{b::{self as other, B}};", "b.rs": "pub use crate::{a::*};"}, True, True),
    ("an exported macro", {"lib.rs": "mod a; mod b;", "a.rs": "#[macro_export] macro_rules! m { () => {} }\nuse crate::b::B;", "b.rs": "fn f() { m!(); }"}, True, True),
    ("comments and strings are not code", {"lib.rs": "mod a; mod b;", "a.rs": "// crate::b::B\n/* crate::b */ const S: &str = \"crate::b::B\";", "b.rs": "use crate::a::A;"}, False, False),
    ("folders that import each other", {"lib.rs": "mod x; mod y;", "x/mod.rs": "mod p; mod s;", "x/p.rs": "use crate::y::q::Q;", "x/s.rs": "", "y/mod.rs": "mod q; mod r;", "y/q.rs": "", "y/r.rs": "use crate::x::s::S;"}, False, True),
    ("test modules count", {"lib.rs": "mod a; mod b;", "a.rs": "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::B;\n}", "b.rs": "use crate::a::A;"}, True, True),
]


def self_test():
    """Checks the checker on SELF_TESTS; returns the names of the cases it gets wrong."""
    import tempfile

    wrong = []
    for name, files, file_cycle, folder_cycle in SELF_TESTS:
        with tempfile.TemporaryDirectory() as top:
            for path, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(top, path)), exist_ok=True)
                with open(os.path.join(top, path), "w", encoding="utf-8") as f:
                    f.write(text + "\n")
            _, _, _, cycles, folder_cycles = check(os.path.join(top, "lib.rs"), lambda p: p)
            if bool(cycles) != file_cycle or bool(folder_cycles) != folder_cycle:
                wrong.append(name)
    return wrong


def main():
    quiet = "--quiet" in sys.argv[1:]
    # The checker first proves itself on crates with a known answer: a bug that
    # hid every edge would otherwise pass every crate.
    wrong = self_test()
    if wrong:
        print("test module_cycles::self_test ... FAILED")
        print("  wrong answer on: " + "; ".join(wrong))
        print("\ntest result: FAILED. 0 passed; 1 failed; 0 ignored")
        sys.exit(1)
    print("test module_cycles::self_test ... ok")
    top = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
    os.chdir(top)
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    rel = lambda p: os.path.relpath(p, top)
    passed, failed = 1, 0
    for pkg in sorted(meta["packages"], key=lambda p: p["name"]):
        for target in pkg["targets"]:
            if "custom-build" in target["kind"]:
                continue
            name = f"{pkg['name']}::{target['kind'][0]}::{target['name']}"
            crate, graph, detail, cycles, folder_cycles = check(target["src_path"], rel)
            if not cycles and not folder_cycles:
                passed += 1
                print(f"test {name} ... ok")
                continue
            failed += 1
            print(f"test {name} ... FAILED")
            for comp in cycles:
                print(f"  cycle of {len(comp)} files: " + " ".join(sorted(rel(f) for f in comp)))
                print("    shortest: " + " -> ".join(rel(f) for f in shortest_cycle(comp, graph)))
                if quiet:
                    continue
                members = set(comp)
                for (a, b), lines in sorted(detail.items()):
                    if a in members and b in members:
                        print(f"    {rel(a)} -> {rel(b)}")
                        for line in lines:
                            print(f"      {line}")
            for folder, comp, edges in folder_cycles:
                where = "crate root" if not folder else "::".join(folder)
                names = sorted("::".join(c) for c in comp)
                print(f"  cycle between the modules of {where}: " + " ".join(names))
                if quiet:
                    continue
                for a, b in sorted(edges):
                    print(f"    {rel(a)} -> {rel(b)}")
                    for line in detail[(a, b)]:
                        print(f"      {line}")
    print(f"\ntest result: {'ok' if not failed else 'FAILED'}. {passed} passed; {failed} failed; 0 ignored")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
