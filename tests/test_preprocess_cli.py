"""`medkern preprocess` (medkern.preprocess): a directory of pydicom's test series plus a
truncated file and an array -> outputs for every readable series, the bad file failed in the
manifest; interrupted-then-resumed == uninterrupted, byte for byte; shards cover the items
once; config and argument errors name the key."""
import argparse
import json
import os
import shutil

import numpy as np
import pytest
from pydicom.data import get_testdata_file

import medkern.preprocess as prep
from tolerances import PREPROCESS_TOLERANCES

CONFIG = """
seed: 3
transforms:
  - Rescale: {from_header: true}
  - Window: {level: 40, width: 400}
  - RandomFlip: {p: 0.5}
  - ResampleToSpacing: {spacing: 0.7}
  - GaussianNoise: {std: 0.01}
  - ZScore: {}
"""


def run(*argv):
    parser = argparse.ArgumentParser()
    prep.add_preprocess_parser(parser.add_subparsers())
    args = parser.parse_args(["preprocess", *map(str, argv)])
    return args.func(args)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "in"
    ct2 = os.path.join(os.path.dirname(get_testdata_file("CT_small.dcm")), "dicomdirtests", "77654033", "CT2")
    shutil.copytree(ct2, root / "patient1" / "ct2")
    (root / "patient2").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "patient2" / "ct.dcm")
    (root / "patient3").mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), root / "patient3" / "mr.dcm")
    (root / "broken").mkdir()
    shutil.copy(get_testdata_file("MR_truncated.dcm"), root / "broken" / "MR_truncated.dcm")
    (root / "broken" / "notes.txt").write_text("not an image")
    rng = np.random.default_rng(0)
    np.save(root / "arrays_a.npy", rng.normal(100, 50, (21, 30)).astype(np.int16))
    np.savez(root / "arrays_b.npz", image=rng.normal(0, 1, (5, 12, 13)).astype(np.float32), spacing=[2.0, 1.0, 1.0])
    config = tmp_path / "pipeline.yaml"
    config.write_text(CONFIG)
    return root, config


def manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_outputs_manifest_and_failed_file(tree, tmp_path):
    root, config = tree
    out = tmp_path / "out"
    assert run(root, out, "--config", config, "--preview") == 1  # 1: some items failed
    records = manifest(out)
    by_name = {os.path.basename(r["source"]): r for r in records}
    assert by_name["MR_truncated.dcm"]["status"] == "failed"
    assert "MR_truncated.dcm" in by_name["MR_truncated.dcm"]["error"]
    assert by_name["notes.txt"]["status"] == "failed" and "not a DICOM" in by_name["notes.txt"]["error"]
    ok = [r for r in records if r["status"] == "ok"]
    assert {os.path.basename(r["source"]) for r in ok} == {"ct2", "ct.dcm", "mr.dcm", "arrays_a.npy", "arrays_b.npz"}
    for r in ok:
        data = np.load(r["output"])
        assert list(data.shape) == r["shape"] and data.dtype == np.float32 and np.isfinite(data).all()
    ct2 = by_name["ct2"]
    assert ct2["shape"][0] == 1 and len(ct2["shape"]) == 4 and ct2["spacing"] == [0.7, 0.7, 0.7]
    assert any("missing slice" in w for w in ct2["warnings"])
    assert by_name["arrays_b.npz"]["spacing"] == [0.7, 0.7, 0.7] and by_name["arrays_b.npz"]["shape"][1] == 14
    assert (out / "preview.png").stat().st_size > 1000
    assert not list(out.glob(".*tmp*"))


def test_interrupted_then_resumed_gives_identical_bytes(tree, tmp_path, monkeypatch):
    root, config = tree
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    run(root, clean, "--config", config)
    real = prep._process
    calls = {"n": 0}

    def interrupted(job):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(job)
    monkeypatch.setattr(prep, "_process", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(root, resumed, "--config", config)
    ct_output = next(it["name"] for it in prep.find_items(root) if it["source"].endswith("ct.dcm"))
    (resumed / f".{ct_output}.npy.tmp-999").write_bytes(b"half-written")  # what a kill mid-write leaves
    done_before = {p.name for p in resumed.glob("*.npy")}
    assert 0 < len(done_before) < 5
    monkeypatch.setattr(prep, "_process", real)
    mtimes = {p.name: p.stat().st_mtime_ns for p in resumed.glob("*.npy")}
    run(root, resumed, "--config", config)
    for name, t in mtimes.items():  # done outputs were skipped, not rewritten
        assert (resumed / name).stat().st_mtime_ns == t
    names = sorted(p.name for p in clean.iterdir() if p.suffix == ".npy")
    assert names == sorted(p.name for p in resumed.iterdir() if p.suffix == ".npy")
    for name in names:
        assert (clean / name).read_bytes() == (resumed / name).read_bytes(), name
    strip = lambda rs: [{k: v for k, v in r.items() if k != "output"} for r in rs]  # noqa: E731
    assert strip(manifest(clean)) == strip(manifest(resumed))
    assert not list(resumed.glob(".*tmp*"))


def test_shards_partition_the_items_and_match_one_run(tree, tmp_path):
    root, config = tree
    run(root, tmp_path / "all", "--config", config)
    for i in range(3):
        run(root, tmp_path / "sharded", "--config", config, "--shard", f"{i}/3")
    sources = []
    for i in range(3):
        lines = (tmp_path / "sharded" / f"manifest.shard{i}of3.jsonl").read_text().splitlines()
        sources += [json.loads(line)["source"] for line in lines]
    assert sorted(sources) == sorted(r["source"] for r in manifest(tmp_path / "all"))
    for p in (tmp_path / "all").glob("*.npy"):
        assert p.read_bytes() == (tmp_path / "sharded" / p.name).read_bytes()


def test_a_shard_removes_only_its_own_leftovers(tree, tmp_path):
    """A temp file of another shard's item is that shard's write in flight: left alone."""
    root, config = tree
    out = tmp_path / "out"
    out.mkdir()
    names = [it["name"] for it in prep.find_items(root) if it["name"]]
    theirs = out / f".{names[1]}.npy.tmp-4242"   # item 1 belongs to shard 1/2
    mine = out / f".{names[0]}.npy.tmp-4243"     # item 0: shard 0/2's own leftover
    stranger = out / ".notes.txt.tmp-17"          # nobody's item
    for p in (theirs, mine, stranger):
        p.write_bytes(b"partial")
    run(root, out, "--config", config, "--shard", "0/2")
    assert theirs.exists() and stranger.exists() and not mine.exists()


def test_shards_started_together_on_one_tree_all_finish(tmp_path):
    """The documented fan-out: --shard 0/4 ... 3/4 at the same time into one OUTPUT."""
    import threading
    root = tmp_path / "in"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(24):
        np.save(root / f"img{i:02d}.npy", rng.normal(0, 1, (40, 40)).astype(np.float32))
    config = tmp_path / "p.yaml"
    config.write_text("seed: 1\ntransforms:\n  - RandomAffine: {degrees: 10}\n  - ZScore: {}\n")
    out = tmp_path / "out"
    codes, start = {}, threading.Barrier(4)

    def shard(i):
        start.wait()
        codes[i] = run(root, out, "--config", config, "--shard", f"{i}/4")
    threads = [threading.Thread(target=shard, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == {i: 0 for i in range(4)}
    records = [json.loads(line) for i in range(4)
               for line in (out / f"manifest.shard{i}of4.jsonl").read_text().splitlines()]
    assert len(records) == 24 and all(r["status"] == "ok" for r in records)
    assert len(list(out.glob("*.npy"))) == 24 and not list(out.glob(".*tmp*"))


def test_workers_give_the_same_bytes(tree, tmp_path):
    root, config = tree
    run(root, tmp_path / "one", "--config", config)
    run(root, tmp_path / "two", "--config", config, "--workers", "2")
    for p in (tmp_path / "one").glob("*.npy"):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes()


def test_npz_output_keeps_spacing(tree, tmp_path):
    root, config = tree
    run(root, tmp_path / "out", "--config", config, "--format", "npz")
    with np.load(tmp_path / "out" / "arrays_b.npz") as data:
        assert data["image"].shape[0] == 1 and list(data["spacing"]) == [0.7, 0.7, 0.7]


@pytest.mark.parametrize("text,needle", [
    ("seeds: 1\ntransforms: []\n", "seeds"),
    ("transforms:\n  - Window: {level: 40, widht: 400}\n", "widht"),
    ("transforms:\n  - Sharpen: {}\n", "Sharpen"),
    ("transforms:\n  - Window: {level: 40, width: 0}\n", "width"),
    ("transforms: {Window: 1}\n", "transforms"),
])
def test_bad_config_is_rejected_naming_the_key(tree, tmp_path, capsys, text, needle):
    root, _ = tree
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert run(root, tmp_path / "out", "--config", config) == 2
    assert needle in capsys.readouterr().err


def test_bad_arguments(tree, tmp_path, capsys):
    root, config = tree
    assert run(root, tmp_path / "o", "--config", config, "--shard", "3/3") == 2
    assert "--shard" in capsys.readouterr().err
    assert run(root, tmp_path / "o", "--config", config, "--workers", "0") == 2
    assert "--workers" in capsys.readouterr().err
    assert run(tmp_path / "missing", tmp_path / "o", "--config", config) == 2
    assert "input" in capsys.readouterr().err


def test_preprocessed_dataset_reads_the_outputs(tree, tmp_path):
    import torch
    from medkern.data.preprocessed import PreprocessedDataset
    root, config = tree
    out = tmp_path / "out"
    run(root, out, "--config", config)
    ds = PreprocessedDataset(out, return_record=True)
    assert len(ds) == 5
    for i in range(len(ds)):
        x, index, record = ds[i]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and index == i
        assert list(x.shape) == record["shape"]
        np.testing.assert_array_equal(x.numpy(), np.load(record["output"]))
    with pytest.raises(ValueError, match="'root'"):
        PreprocessedDataset(tmp_path / "in")


def test_medkern_command_dispatches_preprocess(tree, tmp_path, capsys):
    from medkern.cli import main
    root, config = tree
    out_direct, out_cli = tmp_path / "direct", tmp_path / "cli"
    assert run(root, out_direct, "--config", config) == 1
    assert main(["preprocess", str(root), str(out_cli), "--config", str(config)]) == 1
    for record in manifest(out_cli):
        if record["status"] == "ok":
            twin = out_direct / os.path.relpath(record["output"], out_cli)
            assert np.load(record["output"]).tobytes() == np.load(twin).tobytes()
    assert main(["preprocess", str(root), str(out_cli), "--config", str(config), "--shard", "3"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_config_builds_every_transform_family():
    """A YAML config can name the augmentation, statistics and filter transforms with list
    arguments (YAML has no tuples), and the built pipeline equals the one written in Python."""
    import yaml

    import medkern.transforms as T
    config = yaml.safe_load("""
seed: 5
out_dtype: float32
transforms:
  - PercentileClip: {lower: 1, upper: 99, rescale: true}
  - GaussianBlur: {sigma: [0.0, 1.0, 1.0]}
  - RandomGamma: {gamma: [0.8, 1.2]}
  - ElasticDeform: {num_control_points: [4, 5, 5], max_displacement: 1.5}
  - BiasField: {coefficients: 0.2, order: 2}
  - Resize: {size: [6, 8, 8], antialias: true}
  - GaussianNoise: {std: [0.0, 0.05]}
""")
    p = prep.build_pipeline(config)
    ref = T.Pipeline([T.PercentileClip(1, 99, rescale=True), T.GaussianBlur((0.0, 1.0, 1.0)), T.RandomGamma((0.8, 1.2)),
                      T.ElasticDeform((4, 5, 5), 1.5), T.BiasField(0.2, order=2), T.Resize((6, 8, 8), antialias=True),
                      T.GaussianNoise((0.0, 0.05))], seed=5)
    x = np.random.default_rng(1).normal(100, 30, (2, 1, 9, 16, 17)).astype(np.float32)
    np.testing.assert_array_equal(p(x), ref(x))
    np.testing.assert_allclose(p(x), p.reference(x), **PREPROCESS_TOLERANCES["resample"])
    with pytest.raises(ValueError, match="unknown key"):
        prep.build_pipeline({"transforms": [{"ElasticDeform": {"control_points": 5}}]})


def _write_manifest(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_preprocessed_dataset_orders_shards_by_number_and_lists_each_item_once(tmp_path):
    from medkern.data.preprocessed import PreprocessedDataset
    out = tmp_path / "out"
    out.mkdir()
    records = []
    for i in range(11):
        np.save(out / f"item{i}.npy", np.full((1, 2, 2), i, np.float32))
        records.append(dict(source=f"/in/item{i}.npy", series_uid=None, index=i, output=str(out / f"item{i}.npy"),
                            shape=[1, 2, 2], spacing=None, status="ok", error=None, warnings=[]))
    for i in range(11):  # --shard i/11: item i in shard i
        _write_manifest(out / f"manifest.shard{i}of11.jsonl", [records[i]])
    ds = PreprocessedDataset(out, return_record=True)
    assert [float(ds[k][0][0, 0, 0]) for k in range(len(ds))] == [float(i) for i in range(11)]
    # an earlier unsharded run of the same items beside the shards: each item listed once
    _write_manifest(out / "manifest.jsonl", records[::-1] + [dict(records[0], source="/in/failed", status="failed")])
    ds = PreprocessedDataset(out)
    assert len(ds) == 11
    assert sorted(float(ds[k][0][0, 0, 0]) for k in range(len(ds))) == [float(i) for i in range(11)]
    (out / "manifest.shard3of11.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="manifest.shard3of11.jsonl line 1"):
        PreprocessedDataset(out)
