"""The FlyVis lattice network: exact flyvis counts, order, hull filling, Lawf stride, cache."""

import importlib.metadata
import time

import numpy as np
import pytest

from connectome_gnn.io import DataError
from connectome_gnn.simulate.flyvis import connectome as C


@pytest.fixture(scope="module")
def nets():
    return {e: C.build_connectome(e) for e in (0, 1, 2, 8)}


# extent: columns, nodes, edges, excitatory, hull-filled edges, realised type pairs,
# (pair, du, dv) groups  (flyvis 1.2.0 ConnectomeFromAvgFilters, n_syn_fill = 1)
COUNTS = {
    0: (1, 65, 480, 290, 26, 480, 480),
    1: (7, 443, 8_174, 5_280, 476, 597, 2_019),
    2: (19, 1_203, 28_904, 18_718, 2_268, 604, 2_310),
    8: (217, 13_741, 434_112, 282_123, 43_314, 604, 2_355),
}


@pytest.mark.parametrize("extent", sorted(COUNTS))
def test_exact_counts(nets, extent):
    con = nets[extent]
    n_col, n_nodes, n_edges, n_exc, n_fill, n_pairs, n_groups = COUNTS[extent]
    assert con.n_columns == n_col == 3 * extent * (extent + 1) + 1
    assert con.n_nodes == n_nodes
    assert con.n_edges == n_edges
    assert int((con.edge_sign > 0).sum()) == n_exc
    assert int((con.edge_sign < 0).sum()) == n_edges - n_exc
    assert int(con.edge_filled.sum()) == n_fill
    assert np.unique(con.edge_pair).size == n_pairs
    assert int(con.edge_group.max()) + 1 == n_groups
    assert con.n_types == 65 and con.n_pairs == 605


def test_extent_15_counts_and_speed():
    t0 = time.perf_counter()
    con = C.build_connectome(15)
    assert time.perf_counter() - t0 < 10.0
    assert (con.n_columns, con.n_nodes, con.n_edges) == (721, 45_669, 1_513_231)
    assert int((con.edge_sign > 0).sum()) == 983_980
    assert int(con.edge_filled.sum()) == 155_962


def test_extent_8_facts(nets):
    con = nets[8]
    assert int((con.edge_source == con.edge_target).sum()) == 3_724  # autapses, all hull-filled
    self_loops = con.edge_source == con.edge_target
    assert np.all(con.edge_filled[self_loops]) and np.all(con.edge_n_syn[self_loops] == 1)
    # never two edges between the same ordered node pair
    key = con.edge_source * con.n_nodes + con.edge_target
    assert np.unique(key).size == con.n_edges
    indeg = np.bincount(con.edge_target, minlength=con.n_nodes)
    outdeg = np.bincount(con.edge_source, minlength=con.n_nodes)
    assert indeg.max() == 208 and con.type_names[con.node_type[indeg.argmax()]] == "TmY15"
    assert int((indeg == 0).sum()) == 44 and int((outdeg == 0).sum()) == 462
    central_in = indeg[con.central_index]
    names = list(con.type_names)
    assert central_in[names.index("T4a")] == 119 and central_in[names.index("R8")] == 1
    # du, dv are target minus source column
    np.testing.assert_array_equal(
        con.edge_du, con.node_u[con.edge_target] - con.node_u[con.edge_source]
    )
    np.testing.assert_array_equal(
        con.edge_dv, con.node_v[con.edge_target] - con.node_v[con.edge_source]
    )
    # signs are per type pair
    np.testing.assert_array_equal(con.edge_sign, con.pair_sign[con.edge_pair])


def test_hull_fill_offsets_and_autapse_types(nets):
    data = C.read_connectome_json()
    filters = C.pair_filters(data)
    assert sum(len(f.offsets) for f in filters) == 2_378  # 2,140 listed + 238 filled
    assert sum(int(f.filled.sum()) for f in filters) == 238
    # only pairs with >= 3 offsets are filled
    assert all(f.filled.sum() == 0 for f in filters if (~f.filled).sum() < 3)
    names = list(nets[8].type_names)
    autapse_types = sorted(
        names[f.source_type]
        for f in filters
        if f.source_type == f.target_type and any((o == 0).all() for o in f.offsets[f.filled])
    )
    assert len(autapse_types) == 18
    assert {"L4", "Lawf2", "Mi4", "T4a", "T5d", "TmY18"} <= set(autapse_types)


def test_hull_fill_by_hand():
    # a 2x2 square around the origin.  flyvis' boundary rule (half-open crossing number with
    # ties counted, as matplotlib's Path.contains_points at radius 0) keeps the mid-points of the
    # vertical sides and of the top side, and drops the bottom one
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    filled = C.hull_fill_offsets(square)
    assert filled.tolist() == [[-1, 0], [0, 0], [0, 1], [1, 0]]
    # fewer than 3 offsets, or collinear ones, are never filled
    assert C.hull_fill_offsets(np.array([[0, 0], [3, 0]])).shape == (0, 2)
    assert C.hull_fill_offsets(np.array([[0, 0], [1, 0], [3, 0]])).shape == (0, 2)
    # du-major, dv-minor order of the bounding box
    tri = np.array([[-3, -3], [3, -3], [0, 3]])
    filled = C.hull_fill_offsets(tri)
    assert len(filled) > 10
    order = np.lexsort((filled[:, 1], filled[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(filled)))


def test_node_order_and_lawf_stride(nets):
    con = nets[8]
    # grouped by type in file order, then u ascending, then v ascending
    assert np.all(np.diff(con.node_type) >= 0)
    for t in range(con.n_types):
        sel = con.node_type == t
        key = con.node_u[sel].astype(np.int64) * 100 + con.node_v[sel]
        assert np.all(np.diff(key) > 0)
    lawf_counts = {0: 1, 1: 1, 2: 3, 3: 7, 4: 11, 5: 13, 6: 25, 7: 27, 8: 35, 9: 47, 10: 57}
    for extent, expected in lawf_counts.items():
        u, v = C.hex_columns(extent)
        assert int(((u % 3 == 0) & (v % 2 == 0)).sum()) == expected
    for name in ("Lawf1", "Lawf2"):
        sel = con.node_type == con.type_index(name)
        assert sel.sum() == 35
        assert np.all(con.node_u[sel] % 3 == 0) and np.all(con.node_v[sel] % 2 == 0)
    # Lawf1 -> Lawf1 (single offset (1, 0)) can never be realised
    lawf1 = con.type_index("Lawf1")
    p = np.flatnonzero((con.pair_source_type == lawf1) & (con.pair_target_type == lawf1))
    assert p.size == 1 and con.pair_n_edges[p[0]] == 0
    # n_nodes(e) = 63 (3e(e+1)+1) + 2 L(e)
    assert con.n_nodes == 63 * 217 + 2 * 35


def test_edge_order_first_pair(nets):
    con = nets[1]
    # the file's first pair is R1 -> L1 with the single offset (0, 0): edge k joins column k
    r1, l1 = con.type_index("R1"), con.type_index("L1")
    first = np.flatnonzero(con.edge_pair == 0)
    np.testing.assert_array_equal(first, np.arange(con.n_columns))
    np.testing.assert_array_equal(con.node_type[con.edge_source[first]], r1)
    np.testing.assert_array_equal(con.node_type[con.edge_target[first]], l1)
    np.testing.assert_array_equal(con.node_column[con.edge_source[first]], np.arange(con.n_columns))
    assert np.all(con.edge_n_syn[first] == 40) and np.all(con.edge_sign[first] == -1)
    # edges are grouped by type pair in file order
    assert np.all(np.diff(con.edge_pair) >= 0)


def test_roles_and_input_index(nets):
    con = nets[2]
    roles = dict(zip(con.type_names, con.type_roles, strict=True))
    assert [n for n, r in roles.items() if r == "input"] == [f"R{i}" for i in range(1, 9)]
    assert sum(r == "output" for r in roles.values()) == 34
    assert roles["T4a"] == "output" and roles["Mi1"] == "intermediate"
    idx = con.input_index
    assert idx.shape == (8, con.n_columns)
    for r in range(8):
        assert np.all(con.node_type[idx[r]] == con.type_index(f"R{r + 1}"))
        np.testing.assert_array_equal(con.node_column[idx[r]], np.arange(con.n_columns))
    assert np.all(con.node_u[con.central_index] == 0) and np.all(con.node_v[con.central_index] == 0)


def test_cache_roundtrip_and_corruption(tmp_path, monkeypatch):
    con = C.load_connectome(2, cache_dir=tmp_path)
    files = list(tmp_path.glob("connectome_e2_*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    again = C.load_connectome(2, cache_dir=tmp_path)
    for name, arr in con.to_arrays().items():
        np.testing.assert_array_equal(arr, again.to_arrays()[name], err_msg=name)
    files[0].write_bytes(b"not an npz")
    rebuilt = C.load_connectome(2, cache_dir=tmp_path)
    assert rebuilt.n_edges == con.n_edges
    monkeypatch.setenv(C.CACHE_ENV, str(tmp_path / "env"))
    assert C.default_cache_dir() == tmp_path / "env" / "flyvis"
    C.load_connectome(1)
    assert list((tmp_path / "env" / "flyvis").glob("connectome_e1_*.npz"))


def test_missing_flyvis_names_the_fix(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DataError, match=r"pip install --no-deps flyvis==1\.2\.0"):
        C.connectome_json_path()


def test_bad_json_is_a_data_error(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        C.build_connectome(1, json_path=bad)
    bad.write_text('{"nodes": []}')
    with pytest.raises(DataError, match="missing top-level key"):
        C.build_connectome(1, json_path=bad)
