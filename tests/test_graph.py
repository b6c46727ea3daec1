"""Graph DSL: Newick parsing and writing, networkx compilation, validation errors, the level plan."""

import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from markovppl.graph import (NewickError, balanced_tree, caterpillar_tree, from_edges, from_networkx, from_newick,
                             from_parents, random_tree, read_newick, to_newick)
from markovppl.kernels import Categorical, LinearGaussian
from markovppl.kernels.continuous import BrownianMotion, OrnsteinUhlenbeck


def _parent_names(tree):
    return {tree.names[v]: tree.names[tree.parent[v]] for v in range(1, tree.num_nodes)}


@pytest.mark.smoke
def test_newick_names_lengths_internal_labels_comments_and_quotes():
    text = """
      ( (A:0.1, B : 2.5e-1 )AB:0.3 [&support=0.9],
        'C d'':x':4E-1,
        ( 'e,(f)':1 ,g:0 ) : 0.5
      ) root : 0.0 ;
    """
    t = from_newick(text)
    assert t.names == ("root", "AB", "A", "B", "C d':x", "n5", "e,(f)", "g")
    assert _parent_names(t) == {"AB": "root", "A": "AB", "B": "AB", "C d':x": "root", "n5": "root", "e,(f)": "n5", "g": "n5"}
    np.testing.assert_array_equal(t.branch_lengths, [0.3, 0.1, 0.25, 0.4, 0.5, 1.0, 0.0])
    assert [t.names[i] for i in t.leaves] == ["A", "B", "C d':x", "e,(f)", "g"]
    # round trip through the writer, and unnamed/length-free trees
    again = from_newick(to_newick(t))
    assert again.names == t.names and np.array_equal(again.parent, t.parent) and np.array_equal(again.lengths, t.lengths)
    u = from_newick("((,),);")
    assert u.num_nodes == 5 and len(u.leaves) == 3 and np.isnan(u.lengths[1:]).all()
    # repeated internal labels (bootstrap values) become generated names
    assert from_newick("((A,B)100,(C,D)100);").names == ("n0", "n1", "A", "B", "n4", "C", "D")


@pytest.mark.parametrize("text,message", [
    ("((A,B),C)", "missing ';'"),
    ("((A,B),C;", "unclosed '\\('"),
    ("(A,B));", "unmatched '\\)'"),
    ("(A:x,B);", "expected a branch length"),
    ("(A:1:2,B);", "second ':'"),
    ("(A,B);C", "after ';'"),
    ("(A B,C);", "unexpected label"),
    ("('A,B);", "unterminated quoted"),
    ("(A[,B);", "unterminated comment"),
    (";", "empty tree"),
    ("(A,B)(C,D);", "unexpected '\\('"),
])
def test_newick_errors(text, message):
    with pytest.raises(NewickError, match=message):
        from_newick(text)


def test_newick_semantic_errors_and_file(tmp_path):
    with pytest.raises(ValueError, match="repeated leaf names"):
        from_newick("((A,B),A);")
    with pytest.raises(ValueError, match="negative branch length on the edge\\(s\\) into 'B'"):
        from_newick("(A:1,B:-0.5);")
    path = tmp_path / "tree.nwk"
    path.write_text("[comment]\n((A:1,B:2):1,C:3);\n((X,Y),Z);\n")
    assert read_newick(path).names == ("n0", "n1", "A", "B", "C")


def test_deep_newick_parses_without_recursion():
    n = 20_000
    text = "(" * (n - 1) + "L0" + "".join(f",L{i}:1)" for i in range(1, n)) + ";"
    t = from_newick(text)
    assert len(t.leaves) == n and t.height == n - 1
    assert to_newick(t).count("(") == n - 1


def test_from_parents_and_edges_errors():
    with pytest.raises(ValueError, match="exactly one root.*found 2"):
        from_parents([-1, -1, 0])
    with pytest.raises(ValueError, match="exactly one root.*none"):
        from_parents([1, 0])
    with pytest.raises(ValueError, match="not reachable from the root"):
        from_parents([-1, 2, 1])
    with pytest.raises(ValueError, match="its own parent"):
        from_parents([-1, 1])
    with pytest.raises(ValueError, match="negative branch length"):
        from_parents([-1, 0], lengths=[0.0, -1.0])
    with pytest.raises(ValueError, match="finite"):
        from_parents([-1, 0], lengths=[0.0, np.inf])
    with pytest.raises(ValueError, match="unique"):
        from_parents([-1, 0, 0], names=["a", "b", "b"])
    with pytest.raises(ValueError, match="several parents"):
        from_edges([("r", "a"), ("r", "b"), ("a", "c"), ("b", "c")])
    t = from_edges([("r", "a", 1.0), ("a", "x", 2.0), ("r", "b", 0.5)])
    assert _parent_names(t) == {"a": "r", "x": "a", "b": "r"}


def _graph(kernel=BrownianMotion(jnp.eye(1))):
    g = nx.DiGraph()
    for u, w, ell in [("r", "a", 1.0), ("r", "b", 2.0), ("a", "c", 0.5), ("a", "d", 0.7)]:
        g.add_edge(u, w, kernel=kernel, length=ell)
    return g


def test_from_networkx_validation_errors():
    g = _graph()
    g.add_edge("d", "r", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
    with pytest.raises(ValueError, match="cycle"):
        from_networkx(g)
    g = _graph()
    g.add_edge("s", "e", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
    with pytest.raises(ValueError, match="exactly one root.*found 2"):
        from_networkx(g)
    g = _graph()
    g.add_edge("b", "c", kernel=BrownianMotion(jnp.eye(1)), length=1.0)
    with pytest.raises(ValueError, match="node 'c' has 2 parents.*guiding function"):
        from_networkx(g)
    g = _graph()
    g.add_edge("b", "e", length=1.0)
    with pytest.raises(ValueError, match="edge 'b' -> 'e' has no 'kernel'"):
        from_networkx(g)
    g = _graph()
    g.add_edge("b", "e", kernel=BrownianMotion(jnp.eye(1)), length=-1.0)
    with pytest.raises(ValueError, match="negative branch length"):
        from_networkx(g)
    g = _graph()
    g.add_edge("b", "e", kernel=BrownianMotion(jnp.eye(1)))
    with pytest.raises(ValueError, match="no duration and the edge no 'length'"):
        from_networkx(g)
    g = _graph()
    g.add_edge("b", "e", kernel=BrownianMotion(jnp.eye(2)), length=1.0)
    with pytest.raises(ValueError, match="different shapes"):
        from_networkx(g)
    with pytest.raises(ValueError, match="DiGraph"):
        from_networkx(nx.Graph())


def test_from_networkx_groups_kernels_by_type_in_edge_order():
    g = _graph()
    ou = OrnsteinUhlenbeck(jnp.eye(1), jnp.zeros(1), jnp.eye(1))
    g.add_edge("b", "e", kernel=ou, length=0.25)
    g.add_edge("b", "f", kernel=LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.eye(1)))
    g.nodes["e"]["obs"] = g.nodes["c"]["obs"] = LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.eye(1))
    model = from_networkx(g)
    t = model.tree
    assert t.names == ("r", "a", "c", "d", "b", "e", "f")
    assert model.observed == ("c", "e")
    (bm_idx, ou_idx, lg_idx) = model.edges.index
    assert [t.names[e + 1] for e in bm_idx] == ["a", "c", "d", "b"] and [t.names[e + 1] for e in ou_idx] == ["e"]
    assert [t.names[e + 1] for e in lg_idx] == ["f"]
    np.testing.assert_array_equal(model.edges.kernels[0].duration, [1.0, 0.5, 0.7, 2.0])
    assert model.obs.A.shape == (2, 1, 1)
    # a discrete graph
    g2 = nx.DiGraph()
    g2.add_edge("r", "a", kernel=Categorical(jnp.eye(2)))
    g2.add_edge("r", "b", kernel=Categorical(jnp.eye(2)))
    assert from_networkx(g2).edges.kernels[0].transition_matrix.shape == (2, 2, 2)


@pytest.mark.parametrize("tree", [random_tree(3000, seed=0), caterpillar_tree(500), balanced_tree(10),
                                  from_parents(np.r_[-1, np.zeros(999, int)]), from_newick("(A,B);")])
def test_schedule_covers_every_node_once_children_first_with_bounded_padding(tree):
    sched = tree.schedule()
    n = tree.num_nodes
    flat = sched.reshape(-1)
    real = flat[flat < n]
    assert sorted(real.tolist()) == list(range(n))
    step = np.empty(n, int)
    step[sched[sched < n]] = np.nonzero(sched < n)[0]
    assert np.all(step[1:] < step[tree.parent[1:]])  # every child strictly before its parent
    assert sched[-1][0] == 0 and np.all(sched[-1][1:] == n)  # the root alone in the last row
    assert tree.padded_work() <= 2.5 * n + 64


def test_path_length_matrix_and_basic_properties():
    t = from_newick("((A:1,B:2):0.5,(C:1,D:1):2);")
    s = t.path_length_matrix(t.leaves)
    np.testing.assert_allclose(s, [[1.5, 0.5, 0, 0], [0.5, 2.5, 0, 0], [0, 0, 3, 2], [0, 0, 2, 3]])
    assert t.height == 2 and len(t.internal) == 3
    with pytest.raises(ValueError, match="no branch length"):
        from_newick("(A,B:1);").branch_lengths
    with pytest.raises(ValueError, match="more than once"):
        t.nodes(["A", "A"])
