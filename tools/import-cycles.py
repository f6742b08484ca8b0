#!/usr/bin/env python3
"""Import cycles between the modules of one Rust crate.

Usage: tools/import-cycles.py CRATE_SRC_DIR

Reads every .rs file under the folder (lib.rs is the crate root; main.rs and src/bin/ are other
crates and are skipped), finds each file's references to other modules of the crate (`use`
declarations and paths written inline, starting with `crate::`, `super::`, `self::` or the name
of a child module), resolves them to the file that defines the item (a name a module only
imports, by name or by a glob, is followed to the module that defines it) and builds the
directed graph file -> file.
Inline modules (`mod tests { .. }`) count as part of their file; `mod x;` declarations are not
imports. Prints every strongly connected component of more than one file with the edges inside
it and exits 1 if there is one, else prints a one-line summary and exits 0.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(src):
    """The source with comments, string and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:]) and not re.match(r"[A-Za-z0-9_]", src[i - 1:i] or " "):
            hashes = re.match(r"r(#*)\"", src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(" " + "\n" * src.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(" " + "\n" * src.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # a char literal ('a', '\n', '\u{..}'), else a lifetime
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:])
            if m:
                out.append(" ")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> [['a','b'], ['a','c','d'], ['a','c','e']] (aliases dropped)."""
    tokens = re.findall(IDENT + r"|::|[{}*,]", tree)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def parse_tree():
        """tree := '{' list '}' | '*' | IDENT ('::' tree)? ('as' IDENT)?"""
        nonlocal pos
        tok = peek()
        if tok == "{":
            pos += 1
            paths = parse_list()
            pos += 1  # '}'
            return paths
        if tok == "*":
            pos += 1
            return [["*"]]
        if tok is None or not re.fullmatch(IDENT, tok):
            pos += 1
            return []
        pos += 1
        if peek() == "::":
            pos += 1
            sub = parse_tree()
            return [[tok] + p for p in sub] if sub else [[tok]]
        if peek() == "as":
            pos += 2
        return [[tok]]

    def parse_list():
        nonlocal pos
        paths = []
        while peek() not in (None, "}"):
            paths += parse_tree()
            if peek() == ",":
                pos += 1
        return paths

    return parse_list()


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names below the crate root
        self.file = file
        self.children = set()  # names of child modules in files
        self.uses = []  # (module path of the scope, [segments], is_pub)
        self.inline_paths = []  # (scope, [segments])
        self.items = set()  # names of the items the file defines


def module_files(src_dir):
    mods = {}
    for root, dirs, files in os.walk(src_dir):
        rel = os.path.relpath(root, src_dir)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        if parts[:1] == ("bin",):
            continue
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            if parts == () and f == "main.rs":
                continue
            stem = f[:-3]
            if parts == () and stem == "lib":
                path = ()
            elif stem == "mod":
                path = parts
            else:
                path = parts + (stem,)
            mods[path] = Module(path, os.path.join(root, f))
    for path in mods:
        if path:
            parent = mods.get(path[:-1])
            if parent:
                parent.children.add(path[-1])
    return mods


def scan(mod):
    with open(mod.file, encoding="utf-8") as fh:
        src = strip_comments_and_strings(fh.read())
    src = src.replace("$crate", "      ")
    # `pub(in crate::a)` names a module for visibility, it imports nothing
    src = re.sub(r"\bpub\s*\(\s*in\s+[^)]*\)", lambda m: " " * len(m.group(0)), src)
    # inline modules: (start, end, name) spans, to know the scope of each reference
    spans = []
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", src):
        depth, j = 1, m.end()
        while j < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            j += 1
        spans.append((m.start(), j, m.group(1)))

    def scope_at(pos):
        inner = [s for s in spans if s[0] <= pos < s[1]]
        inner.sort()
        return mod.path + tuple(s[2] for s in inner)

    item = (r"\b(?:fn|struct|enum|union|trait|type|const|static|mod|macro_rules!)\s+(" + IDENT + r")")
    mod.items.update(m.group(1) for m in re.finditer(item, src))
    use_spans = []
    for m in re.finditer(r"\b(pub(\s*\([^)]*\))?\s+)?use\s+([^;]*);", src):
        use_spans.append((m.start(), m.end()))
        is_pub = m.group(1) is not None  # pub(crate) re-exports are followed too
        tree = m.group(3).strip()
        if tree.startswith("::"):
            continue
        for segs in expand_use_tree(tree):
            mod.uses.append((scope_at(m.start()), segs, is_pub))
    for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:\s*::\s*" + IDENT + r")+)", src):
        if any(a <= m.start() < b for a, b in use_spans):
            continue
        segs = [s.strip() for s in m.group(1).split("::")]
        mod.inline_paths.append((scope_at(m.start()), segs))


def absolute(scope, segs, mods, file_path):
    """The absolute path (below the crate root) that segs names from scope, or None (external)."""
    segs = list(segs)
    if segs[0] == "crate":
        return tuple(segs[1:])
    if segs[0] in ("self", "super"):
        base = list(scope)
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super":
                if not base:
                    return None
                base.pop()
            segs.pop(0)
        return tuple(base) + tuple(segs)
    # a path relative to the scope: only a child module of the file counts (2018 edition)
    if scope == file_path and file_path + (segs[0],) in mods:
        return scope + tuple(segs)
    return None


def build_graph(mods):
    # every name a module brings in with `use` (private ones too: a child sees them through
    # `super::`), and the modules it glob-imports
    imports = {}  # (module path, name) -> absolute target path
    globs = {p: [] for p in mods}
    for mod in mods.values():
        for scope, segs, _ in mod.uses:
            if scope != mod.path:
                continue
            target = absolute(scope, segs, mods, mod.path)
            if target is None:
                continue
            if segs[-1] == "*":
                globs[mod.path].append(target[:-1])
            elif segs[-1] == "self":
                imports[(mod.path, segs[-2] if len(segs) > 1 else "self")] = target[:-1]
            else:
                imports[(mod.path, segs[-1])] = target

    def resolve(path, seen=()):
        """The module (a key of mods) that defines what path names."""
        for k in range(len(path), -1, -1):
            if path[:k] in mods:
                prefix = path[:k]
                break
        if k == len(path) or path in seen:
            return prefix
        name = path[k]
        seen = seen + (path,)
        if name in mods[prefix].items:
            return prefix
        if (prefix, name) in imports:
            return resolve(imports[(prefix, name)] + path[k + 1:], seen)
        for g in globs[prefix]:
            if g in mods and (name in mods[g].items or (g, name) in imports):
                return resolve(g + path[k:], seen)
        return prefix

    edges = {p: set() for p in mods}
    why = {}  # (from, to) -> the first path that makes the edge
    for mod in mods.values():
        refs = [(scope, segs) for scope, segs, _ in mod.uses] + mod.inline_paths
        for scope, segs in refs:
            target = absolute(scope, segs, mods, mod.path)
            if target is None:
                continue
            if target and target[-1] in ("*", "self"):
                target = target[:-1]
            dest = resolve(target)
            if dest != mod.path:
                edges[mod.path].add(dest)
                why.setdefault((mod.path, dest), "::".join(segs))
    return edges, why


def strongly_connected(edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
            out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(__doc__.strip())
    src_dir = sys.argv[1]
    mods = module_files(src_dir)
    if () not in mods:
        sys.exit(f"{src_dir}: no lib.rs")
    for mod in mods.values():
        scan(mod)
    edges, why = build_graph(mods)

    def name(p):
        return os.path.relpath(mods[p].file, src_dir)

    cycles = [c for c in strongly_connected(edges) if len(c) > 1]
    if not cycles:
        n_edges = sum(len(e) for e in edges.values())
        print(f"{src_dir}: {len(mods)} files, {n_edges} imports between them, no import cycles")
        return 0
    print(f"{src_dir}: {len(cycles)} import cycle(s)")
    for comp in cycles:
        members = set(comp)
        print(f"- {len(comp)} files: " + ", ".join(name(p) for p in comp))
        for p in comp:
            for q in sorted(edges[p] & members):
                print(f"    {name(p)} -> {name(q)}  ({why[(p, q)]})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
