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

__all__ = ["near_pairs", "near_pairs_threaded", "fill_pairs", "work_arrays"]


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


def work_arrays(n_nodes: int, n_edges: int, n_dest: int) -> tuple:
    """Scratch arrays of one running block (``dist`` all inf, ``done`` all False; the
    kernel leaves them so): 4.8 MB nationally. Allocated by the caller's thread."""
    return (np.full(n_nodes, np.inf), np.zeros(n_nodes, np.bool_), np.empty(n_edges + 1),
            np.empty(n_edges + 1, np.int64), np.empty(n_nodes, np.int64), np.empty(n_dest, np.int64),
            np.empty(n_dest))


@njit(cache=True, nogil=True)
def fill_pairs(indptr, indices, weights, src, s, e, o_ptr, o_idx, o_snap, t_ptr, t_idx, d_snap, limit, max_km,
               dist, done, hk, hn, seen, hit_j, hit_d, oi, oj, ok):  # pragma: no cover - compiled
    """Pairs of sources ``s:e`` written into ``oi, oj, ok`` from position 0, a source at a
    time while its origins' pairs surely fit; returns ``(k, b, need)``: ``k`` entries
    written, ``b`` the first source not written (``e`` when done) and ``need`` the room
    source ``b`` asks for. The scratch arrays (:func:`work_arrays`) come back as given.
    Allocates nothing large, so threads may run it on buffers of the main thread."""
    cap = oi.size
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
        for q in range(m):
            v = seen[q]
            dist[v] = np.inf
            done[v] = False
        need = (o_ptr[b + 1] - o_ptr[b]) * h
        if k + need > cap:  # stop before the source; it is run again with room
            return k, b, need
        order = np.argsort(hit_j[:h])
        for q in range(o_ptr[b], o_ptr[b + 1]):
            o = o_idx[q]
            for r in range(h):
                x = order[r]
                j = hit_j[x]
                tot = hit_d[x] + o_snap[o] + d_snap[j]
                if tot <= max_km:
                    oi[k], oj[k], ok[k] = o, j, tot
                    k += 1
    return k, e, 0


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
    dist, done, hk, hn, seen, hit_j, hit_d = (np.full(n, np.inf), np.zeros(n, np.bool_), np.empty(indices.size + 1),
                                              np.empty(indices.size + 1, np.int64), np.empty(n, np.int64),
                                              np.empty(t_idx.size, np.int64), np.empty(t_idx.size))
    cap = 1024
    oi, oj, ok = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap)
    k, b = 0, s
    while b < e:
        w, b, need = fill_pairs(indptr, indices, weights, src, b, e, o_ptr, o_idx, o_snap, t_ptr, t_idx, d_snap,
                                limit, max_km, dist, done, hk, hn, seen, hit_j, hit_d, oi[k:], oj[k:], ok[k:])
        k += w
        if b < e:  # grow
            cap = max(2 * cap, k + need)
            oi2, oj2, ok2 = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap)
            oi2[:k], oj2[:k], ok2[:k] = oi[:k], oj[:k], ok[:k]
            oi, oj, ok = oi2, oj2, ok2
    return oi[:k].copy(), oj[:k].copy(), ok[:k].copy()


def near_pairs_threaded(graph, src, o_ptr, o_idx, o_snap, t_ptr, t_idx, d_snap, limit: float, max_km: float,
                        bounds, threads: int, cap: int = 1 << 18) -> list:
    """:func:`near_pairs` of each block in ``bounds``, ``threads`` at a time; returns
    ``(i, j, km)`` parts whose concatenation is the blocks' pairs in the order of ``bounds``.

    Every array is allocated here, in the calling thread: a thread's own malloc arena
    keeps the top of its heap after a free (``malloc_trim`` does not return it), 50 MB
    nationally when the blocks allocated their own. Each thread gets scratch arrays and an
    output buffer of ``cap`` entries (6 MB); a finished or full buffer is copied out here
    and handed to the next block (or to the rest of the same one).
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    g = graph
    consts = (o_ptr, o_idx, o_snap, t_ptr, t_idx, d_snap, float(limit), float(max_km))
    todo = [(s, s, e) for s, e in reversed(list(bounds))]  # (block, from, to)
    parts: dict[int, list] = {s: [] for _, s, _ in todo}
    free = [(work_arrays(g.shape[0], g.indices.size, t_idx.size),
             (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap))) for _ in range(threads)]

    def run(s, e, work, out):
        return fill_pairs(g.indptr, g.indices, g.data, src, s, e, *consts, *work, *out)

    with ThreadPoolExecutor(threads, thread_name_prefix="studentflow-dijkstra") as pool:
        running = {}
        while todo or running:
            while todo and free:
                (block, s, e), (work, out) = todo.pop(), free.pop()
                running[pool.submit(run, s, e, work, out)] = (block, e, work, out)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                block, e, work, out = running.pop(f)
                k, b, need = f.result()
                parts[block].append(tuple(a[:k].copy() for a in out))
                if b < e:  # the buffer filled: the rest of the block, with room for source b
                    todo.append((block, b, e))
                    if need > out[0].size:
                        n = max(need, 2 * out[0].size)
                        out = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n))
                free.append((work, out))
    return [part for block in sorted(parts) for part in parts[block]]
