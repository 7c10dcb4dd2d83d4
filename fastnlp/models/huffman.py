"""The Huffman tree of hierarchical softmax (word2vec.c's CreateBinaryTree, for any count order).

Every word is a leaf; its output is the sequence of binary decisions on the path from the root,
one logistic regression per inner node. Frequent words sit near the root (short codes), so the
average cost per word is about the entropy of the unigram distribution, log2 V at worst.
"""
from __future__ import annotations

import heapq

import numpy as np


def huffman_tree(counts):
    """``(points, codes, lengths)`` of the Huffman tree of ``counts`` (V,) positive integers.

    Leaves are words ``0..V-1``; inner nodes are numbered ``0..V-2`` in the order they are made
    (the root is ``V - 2``), which is their row in ``syn1``. Row ``w`` of ``points`` (V, L)
    int32 lists the inner nodes from the root down to word w's parent, row ``w`` of ``codes``
    (V, L) uint8 the branch taken at each (0: the lighter child, 1: the heavier one, as in
    word2vec.c); ``lengths[w]`` entries are used, the rest is zero. Ties between equal counts
    go to the node made first, so the tree is deterministic. A single word gets the empty code.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-D, got shape {counts.shape}")
    V = counts.shape[0]
    if V == 0:
        raise ValueError("a Huffman tree needs at least one word")
    if (counts <= 0).any():
        raise ValueError("Huffman tree counts must be positive")
    n_nodes = 2 * V - 1
    parent = np.zeros(n_nodes, dtype=np.int64)
    branch = np.zeros(n_nodes, dtype=np.uint8)
    heap = [(int(c), node) for node, c in enumerate(counts.tolist())]
    heapq.heapify(heap)
    for node in range(V, n_nodes):
        count_a, a = heapq.heappop(heap)
        count_b, b = heapq.heappop(heap)
        parent[a], parent[b] = node, node
        branch[b] = 1
        heapq.heappush(heap, (count_a + count_b, node))
    # Children are made before their parents, so depths fill in from the root down.
    depth = np.zeros(n_nodes, dtype=np.int64)
    for node in range(n_nodes - 2, -1, -1):
        depth[node] = depth[parent[node]] + 1
    lengths = depth[:V].astype(np.int32)
    L = int(lengths.max())
    points = np.zeros((V, L), dtype=np.int32)
    codes = np.zeros((V, L), dtype=np.uint8)
    # Walk all leaves up together: step k fills position depth - 1 - k of every longer path.
    node = np.arange(V)
    rows = np.arange(V)
    for k in range(L):
        active = lengths > k
        at = lengths[active] - 1 - k
        codes[rows[active], at] = branch[node[active]]
        points[rows[active], at] = parent[node[active]] - V
        node = np.where(active, parent[node], node)
    return points, codes, lengths
