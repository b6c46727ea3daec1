r"""Newick trees: a small, iterative (no recursion limit) parser and a writer.

Grammar accepted (the usual Newick/New Hampshire format):

* nested parentheses, children separated by ``,``, the tree ends with ``;``;
* a label after a leaf or after ``)`` (internal labels), an optional ``:length`` after any node
  (scientific notation allowed; the root's length is ignored);
* quoted labels ``'like this'`` (``''`` inside a quoted label is a quote), which may hold any
  character; in unquoted labels underscores are kept as they are;
* comments ``[...]`` anywhere outside quotes are ignored, and so is whitespace.

Node names must identify nodes: leaf labels must be unique and non-empty leaves get ``n<k>`` (their
preorder index). Internal labels that are empty or repeat another label (e.g. bootstrap support
values) are kept only as node names when unique; otherwise the node is named ``n<k>``.
"""

from __future__ import annotations

import os

import numpy as np

from .topology import Tree, from_parents

__all__ = ["from_newick", "read_newick", "to_newick", "NewickError"]

_SPECIAL = set("(),:;[]'")


class NewickError(ValueError):
    """A Newick string that cannot be parsed; the message gives the position.

    Examples:
        >>> try:
        ...     from_newick("((A,B),C;")
        ... except NewickError as err:
        ...     print(err)
        Newick: 1 unclosed '(' before ';' (position 8)
    """


def _tokens(text: str):
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "[":
            j = text.find("]", i + 1)
            if j < 0:
                raise NewickError(f"Newick: unterminated comment '[' at position {i}")
            i = j + 1
        elif ch == "'":
            out, j = [], i + 1
            while True:
                if j >= n:
                    raise NewickError(f"Newick: unterminated quoted label starting at position {i}")
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        out.append("'")
                        j += 2
                        continue
                    break
                out.append(text[j])
                j += 1
            yield ("label", "".join(out), i)
            i = j + 1
        elif ch in "(),:;":
            yield (ch, ch, i)
            i += 1
        elif ch == "]":
            raise NewickError(f"Newick: unmatched ']' at position {i}")
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            yield ("label", text[i:j], i)
            i = j
    yield ("end", "", n)


def from_newick(text: str) -> Tree:
    r"""Parse a Newick string into a [`Tree`][markovppl.graph.topology.Tree].

    Raises:
        NewickError: malformed input (unbalanced parentheses, a missing ``;``, a length that is not a
            number, text after ``;``, ...), with the position.
        ValueError: repeated leaf names or negative branch lengths.

    Examples:
        >>> t = from_newick("((A:0.1,B:0.2)AB:0.3,'C d':0.4)root;")
        >>> t.names, t.branch_lengths.tolist()
        (('root', 'AB', 'A', 'B', 'C d'), [0.3, 0.1, 0.2, 0.4])
        >>> from_newick("(A, [a comment] B);").names
        ('n0', 'A', 'B')
    """
    names: list[str | None] = []
    parents: list[int] = []
    lengths: list[float] = []
    is_leaf: list[bool] = []
    stack: list[int] = []
    state = "start"  # expecting a subtree
    last = -1
    has_label = has_length = False
    done = False
    tokens = _tokens(text)

    def new_node(leaf: bool) -> int:
        names.append(None)
        parents.append(stack[-1] if stack else -1)
        lengths.append(np.nan)
        is_leaf.append(leaf)
        if not stack and len(names) > 1:
            raise NewickError("Newick: several top-level subtrees (missing parentheses around the tree?)")
        return len(names) - 1

    pending = None
    while True:
        kind, value, pos = pending if pending is not None else next(tokens)
        pending = None
        if done:
            if kind != "end":
                raise NewickError(f"Newick: unexpected text after ';' at position {pos}")
            break
        if state == "start":
            if kind == "(":
                stack.append(new_node(False))
                continue
            if kind in ("end", ";") and not names:
                raise NewickError("Newick: empty tree")
            if kind == "end":
                raise NewickError(f"Newick: unexpected end of input at position {pos}")
            last = new_node(True)
            has_label = has_length = False
            state = "after"
            if kind == "label":
                names[last] = value
                has_label = True
            else:
                pending = (kind, value, pos)
            continue
        # state == "after": a node was just completed
        if kind == "label":
            if has_label or has_length:
                raise NewickError(f"Newick: unexpected label {value!r} at position {pos} (missing ',' or ')'?)")
            names[last] = value
            has_label = True
        elif kind == ":":
            if has_length:
                raise NewickError(f"Newick: second ':' for one node at position {pos}")
            k2, v2, p2 = next(tokens)
            try:
                if k2 != "label":
                    raise ValueError
                lengths[last] = float(v2)
            except ValueError:
                raise NewickError(f"Newick: expected a branch length after ':' at position {p2}, got {v2!r}") from None
            has_length = True
        elif kind == ",":
            if not stack:
                raise NewickError(f"Newick: ',' outside parentheses at position {pos}")
            state = "start"
        elif kind == ")":
            if not stack:
                raise NewickError(f"Newick: unmatched ')' at position {pos}")
            last = stack.pop()
            has_label = has_length = False
        elif kind == ";":
            if stack:
                raise NewickError(f"Newick: {len(stack)} unclosed '(' before ';' (position {pos})")
            done = True
        elif kind == "end":
            if stack:
                raise NewickError(f"Newick: {len(stack)} unclosed '(' at the end (position {pos})")
            raise NewickError(f"Newick: missing ';' at the end (position {pos})")
        else:  # '(' after a node
            raise NewickError(f"Newick: unexpected '(' at position {pos} (missing ','?)")

    leaf_names = [x for x, leaf in zip(names, is_leaf) if leaf and x]
    if len(set(leaf_names)) != len(leaf_names):
        seen, dup = set(), set()
        for x in leaf_names:
            (dup.add(x) if x in seen else seen.add(x))
        raise ValueError(f"Newick: repeated leaf names {sorted(dup)[:5]}; leaf names must be unique")
    counts: dict[str, int] = {}
    for x in names:
        if x:
            counts[x] = counts.get(x, 0) + 1
    final = [x if x and counts[x] == 1 else f"n{i}" for i, x in enumerate(names)]
    taken = set(final)
    if len(taken) != len(final):  # a label such as "n3" collided with a generated name
        final = [x if final.count(x) == 1 else f"n{i}_" for i, x in enumerate(final)]
    return from_parents(np.asarray(parents), final, np.asarray(lengths))


def read_newick(path: str | os.PathLike) -> Tree:
    """Read the first tree of a Newick file.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "t.nwk")
        >>> _ = open(path, "w").write("(A:1,B:2);\\n")
        >>> read_newick(path).names
        ('n0', 'A', 'B')
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    end = text.find(";")
    return from_newick(text if end < 0 else text[: end + 1])


def _quote(name: str) -> str:
    if name and not any(c in _SPECIAL or c.isspace() for c in name):
        return name
    return "'" + name.replace("'", "''") + "'"


def to_newick(tree: Tree, lengths: bool = True) -> str:
    """Write a tree as Newick (names quoted when needed; lengths where known).

    Examples:
        >>> to_newick(from_newick("((A:0.1,B:0.2)AB:0.3,'C d':0.4)root;"))
        "((A:0.1,B:0.2)AB:0.3,'C d':0.4)root;"
    """
    n = tree.num_nodes
    kids = [[] for _ in range(n)]
    for v in range(1, n):
        kids[tree.parent[v]].append(v)
    out: list[str] = []

    def label(v):
        s = _quote(tree.names[v])
        if lengths and v > 0 and not np.isnan(tree.lengths[v]):
            s += f":{float(tree.lengths[v])!r}"
        return s

    stack = [(0, 0)]
    while stack:
        v, k = stack.pop()
        if not kids[v]:
            out.append(label(v))
        elif k == 0:
            out.append("(")
            stack.append((v, 1))
            stack.append((kids[v][0], 0))
        elif k < len(kids[v]):
            out.append(",")
            stack.append((v, k + 1))
            stack.append((kids[v][k], 0))
        else:
            out.append(")" + label(v))
    return "".join(out) + ";"
