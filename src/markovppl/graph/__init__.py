r"""Trees (and the validation of DAGs) for backward filtering forward guiding beyond chains.

Build a [`Tree`][markovppl.graph.topology.Tree] from a Newick string or file
([`from_newick`][markovppl.graph.newick.from_newick], [`read_newick`][markovppl.graph.newick.read_newick]),
from a ``networkx.DiGraph`` whose edges carry kernels ([`from_networkx`][markovppl.graph.nx.from_networkx];
DAGs whose multi-parent nodes carry a guiding function: [`dag_from_networkx`][markovppl.graph.dag.dag_from_networkx]),
from parent indices or edge lists ([`from_parents`][markovppl.graph.topology.from_parents],
[`from_edges`][markovppl.graph.builders.from_edges]) or with the shape builders. The tree compiles to a
static level-ordered plan that the tree families ([`GaussianTree`][markovppl.families.tree.GaussianTree],
[`DiscreteTree`][markovppl.families.tree.DiscreteTree]) run with one ``lax.scan`` per segment of levels.
"""

from . import builders, dag, edges, newick, nx, plot, topology
from .dag import DAGGraph, anchored_guide, dag_from_networkx
from .builders import balanced_tree, caterpillar_tree, from_edges, random_tree
from .edges import EdgeKernels, stack_kernels
from .newick import NewickError, from_newick, read_newick, to_newick
from .nx import GraphModel, from_networkx
from .topology import Tree, from_parents

__all__ = [
    "DAGGraph", "EdgeKernels", "GraphModel", "anchored_guide", "dag", "dag_from_networkx", "NewickError", "Tree", "balanced_tree", "builders", "caterpillar_tree", "edges",
    "from_edges", "from_networkx", "from_newick", "from_parents", "newick", "nx", "plot", "random_tree", "read_newick",
    "stack_kernels", "to_newick", "topology",
]
