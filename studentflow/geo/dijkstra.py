"""Limited Dijkstra from many sources that touches only what it reaches (numba; optional).

Loaded by :func:`studentflow.geo.network.kernel` on first use, only where numba is
installed. :func:`near_pairs` gives, for a block of source nodes, exactly the
``(i, j, km)`` entries of the scipy block (:func:`studentflow.geo.network._network_block`):
the same pairs in the same order, the same float64 sums. Dijkstra's final distance of a
node is the smallest of the sums ``dist[u] + w(u, v)`` over its settled neighbours, a
value that does not depend on the heap or on the order ties are broken in, so a binary
heap here and scipy's Fibonacci heap give the same bits (checked against
:func:`scipy.sparse.csgraph.dijkstra` in ``tests/test_dijkstra.py``). Compiled once per
machine (``cache=True``); ``nogil=True`` so blocks of sources run in threads.

Why: scipy's ``dijkstra(graph, indices=block, limit=15)`` fills a dense block x all-nodes
matrix of inf (42,000 columns nationally) although a source reaches ~120 nodes within
15 km; the columns of the destinations and the masks over them then cost as much again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["near_pairs"]


@njit(cache=True, nogil=True)
def _sift_up(hk, hn, k):  # pragma: no cover - compiled
    key, node = hk[k], hn[k]
    while k > 0:
        p = (k - 1) >> 1
        if hk[p] <= key:
            break
        hk[k], hn[k] = hk[p], hn[p]
        k = p
    hk[k], hn[k] = key, node


@njit(cache=True, nogil=True)
def _pop(hk, hn, size):  # pragma: no cover - compiled
    """Remove the root of the heap of ``size`` entries (the caller read it first)."""
    size -= 1
    key, node = hk[size], hn[size]
    k = 0
    while True:
        c = 2 * k + 1
        if c >= size:
            break
        if c + 1 < size and hk[c + 1] < hk[c]:
            c += 1
        if key <= hk[c]:
            break
        hk[k], hn[k] = hk[c], hn[c]
        k = c
    if size > 0:
        hk[k], hn[k] = key, node
    return size


@njit(cache=True, nogil=True)
def _settle(indptr, indices, weights, source, limit, dist, done, hk, hn, seen):  # pragma: no cover - compiled
    """Dijkstra from ``source`` up to ``limit``: settled nodes in ``seen[:m]`` in the order
    settled, their distances in ``dist``; returns m. Nodes touched but not settled (none:
    every pushed node is settled, since pushes respect the limit) are reset by the caller
    through ``seen`` as well (``done`` marks the settled ones)."""
    m = 0
    size = 1
    hk[0], hn[0] = 0.0, source
    dist[source] = 0.0
    while size > 0:
        d, u = hk[0], hn[0]
        size = _pop(hk, hn, size)
        if done[u]:
            continue
        done[u] = True
        seen[m] = u
        m += 1
        for t in range(indptr[u], indptr[u + 1]):
            v = indices[t]
            if done[v]:
                continue
            nd = d + weights[t]
            if nd <= limit and nd < dist[v]:
                dist[v] = nd
                hk[size], hn[size] = nd, v
                _sift_up(hk, hn, size)
                size += 1
    return m


@njit(cache=True, nogil=True)
def near_pairs(indptr, indices, weights, src, s, e, o_ptr, o_idx, o_snap,
               t_ptr, t_idx, d_snap, limit, max_km):  # pragma: no cover - compiled
    """Pairs within ``max_km`` of the origins snapped to source nodes ``src[s:e]``.

    Parameters
    ----------
    indptr, indices, weights : ndarray
        The CSR arrays of the road graph (weights in km, >= 0).
    src : ndarray of int
        Source nodes, one per origin group; ``s:e`` is the block run here.
    o_ptr, o_idx : ndarray of int
        Origins of source ``k``: ``o_idx[o_ptr[k]:o_ptr[k + 1]]`` (ascending).
    o_snap, d_snap : ndarray of float
        Access legs (km) of origins and destinations to their nodes.
    t_ptr, t_idx : ndarray of int
        Destinations snapped to graph node ``v``: ``t_idx[t_ptr[v]:t_ptr[v + 1]]``.
    limit, max_km : float
        Dijkstra stops beyond ``limit`` km (scipy's ``limit``: ``<=`` kept); pairs are kept
        when ``(path + o_snap) + d_snap <= max_km`` (``inf``: every reached pair).

    Returns
    -------
    (i, j, km) : ndarray, ndarray, ndarray
        Origin, destination and km of each pair, by source, then origin, then ``j``.
    """
    n = indptr.size - 1
    dist = np.full(n, np.inf)
    done = np.zeros(n, np.bool_)
    hk = np.empty(indices.size + 1)
    hn = np.empty(indices.size + 1, np.int64)
    seen = np.empty(n, np.int64)
    hit_j = np.empty(t_idx.size, np.int64)
    hit_d = np.empty(t_idx.size)
    cap = 1024
    oi = np.empty(cap, np.int64)
    oj = np.empty(cap, np.int64)
    ok = np.empty(cap)
    k = 0
    for b in range(s, e):
        m = _settle(indptr, indices, weights, src[b], limit, dist, done, hk, hn, seen)
        h = 0
        for q in range(m):
            v = seen[q]
            for t in range(t_ptr[v], t_ptr[v + 1]):
                hit_j[h] = t_idx[t]
                hit_d[h] = dist[v]
                h += 1
        order = np.argsort(hit_j[:h])
        for q in range(o_ptr[b], o_ptr[b + 1]):
            o = o_idx[q]
            if k + h > cap:
                while k + h > cap:
                    cap *= 2
                oi2, oj2, ok2 = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap)
                oi2[:k], oj2[:k], ok2[:k] = oi[:k], oj[:k], ok[:k]
                oi, oj, ok = oi2, oj2, ok2
            for r in range(h):
                x = order[r]
                j = hit_j[x]
                tot = hit_d[x] + o_snap[o] + d_snap[j]
                if tot <= max_km:
                    oi[k], oj[k], ok[k] = o, j, tot
                    k += 1
        for q in range(m):
            v = seen[q]
            dist[v] = np.inf
            done[v] = False
    return oi[:k].copy(), oj[:k].copy(), ok[:k].copy()
