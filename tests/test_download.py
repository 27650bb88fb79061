"""Dataset download and resolution against a local HTTP server on 127.0.0.1 (never the internet):
a good download lands atomically, a checksum mismatch or an HTTP error raises a clear error and
leaves no file behind, and $MEDKERN_DATA copies are used as they are."""
import dataclasses
import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from medkern.data import medmnist


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, breastmnist):
    root = tmp_path / "served"
    root.mkdir()
    shutil.copy(breastmnist, root / "breastmnist.npz")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    md5 = hashlib.md5((root / "breastmnist.npz").read_bytes()).hexdigest()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", md5, root / "breastmnist.npz"
    httpd.shutdown()
    httpd.server_close()


def test_download_success(server, tmp_path):
    url, md5, source = server
    dest = tmp_path / "cache"
    path = medmnist.download("breastmnist", dest, base_url=url, md5=md5, progress=False)
    assert path == dest / "breastmnist.npz"
    assert path.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["breastmnist.npz"]  # no temporary file left
    assert len(medmnist.load_npz(path)["test"]) == 156


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    url, _, _ = server
    dest = tmp_path / "cache"
    with pytest.raises(medmnist.ChecksumError, match="md5"):
        medmnist.download("breastmnist", dest, base_url=url, md5="0" * 32, progress=False)
    assert list(dest.iterdir()) == []


def test_download_http_404(server, tmp_path):
    url, _, _ = server
    dest = tmp_path / "cache"
    with pytest.raises(medmnist.DataError, match="404"):
        medmnist.download("pneumoniamnist", dest, base_url=url, progress=False)
    assert list(dest.iterdir()) == []


def test_download_unreachable_server(tmp_path):
    # port 9 on localhost: nothing listens there, the connection is refused at once
    with pytest.raises(medmnist.DataError, match="failed"):
        medmnist.download("breastmnist", tmp_path, base_url="http://127.0.0.1:9", progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_resolve_downloads_into_cache_with_table_checksum(server, tmp_path, monkeypatch):
    url, md5, _ = server
    monkeypatch.setenv(medmnist.BASE_URL_ENV, url)
    monkeypatch.setenv("MEDKERN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDKERN_DATA", raising=False)
    monkeypatch.setitem(medmnist.DATASETS, "breastmnist",
                        dataclasses.replace(medmnist.DATASETS["breastmnist"], md5=md5))
    path = medmnist.resolve_dataset("BreastMNIST", progress=False)
    assert path == tmp_path / "cache" / "breastmnist.npz" and path.is_file()
    # second time: found in the cache, no server needed
    monkeypatch.setenv(medmnist.BASE_URL_ENV, "http://127.0.0.1:9")
    assert medmnist.resolve_dataset("breastmnist", progress=False) == path


def test_resolve_uses_local_copy_without_checksum(pneumoniamnist, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDKERN_DATA", str(pneumoniamnist.parent))
    monkeypatch.setenv("MEDKERN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv(medmnist.BASE_URL_ENV, "http://127.0.0.1:9")  # would fail if it tried
    assert medmnist.resolve_dataset("pneumoniamnist") == pneumoniamnist


def test_resolve_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDKERN_DATA", raising=False)
    monkeypatch.setenv("MEDKERN_CACHE", str(tmp_path))
    with pytest.raises(medmnist.DataError, match="dataset"):
        medmnist.resolve_dataset("octmnist", download_missing=False)


def test_unknown_dataset_name():
    with pytest.raises(medmnist.DataError, match="dataset.*mnist"):
        medmnist.resolve_dataset("cifar10")


def test_table_is_complete():
    names = {"pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
             "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist", "organmnist3d",
             "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d", "synapsemnist3d"}
    assert set(medmnist.DATASETS) == names
    # known answers: md5 of the official files as MedMNIST v2's own dataset table publishes them
    published_md5 = {"pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f",
                     "breastmnist": "750601b1f35ba3300ea97c75c52ff8f6",
                     "retinamnist": "bd4c0672f1bba3e3a89f0e4e876791e4",
                     "octmnist": "c68d92d5b585d8d81f7112f81e2d0842",
                     "organmnist3d": "21f0a239e7f502e6eca33c3fc453c0b6",
                     "synapsemnist3d": "1235b78a3cd6280881dd7850a78eadb6"}
    for name, md5 in published_md5.items():
        assert medmnist.DATASETS[name].md5 == md5, name
    for info in medmnist.DATASETS.values():
        assert len(info.md5) == 32 and int(info.md5, 16) >= 0
        assert info.url(medmnist.OFFICIAL_BASE_URL) == f"https://zenodo.org/record/6496656/files/{info.name}.npz"
        if info.spatial_dims == 2:
            assert 0.5 < info.published_auc <= 1.0 and 0.0 < info.published_acc <= 1.0
    assert (medmnist.DATASETS["pneumoniamnist"].published_auc, medmnist.DATASETS["pneumoniamnist"].published_acc) \
        == (0.944, 0.854)
    assert medmnist.DATASETS["breastmnist"].url("https://example.org/x/") == "https://example.org/x/breastmnist.npz"


def test_cli_download_command(server, tmp_path, monkeypatch, capsys):
    from medkern.cli import main
    url, md5, _ = server
    monkeypatch.setenv(medmnist.BASE_URL_ENV, url)
    monkeypatch.setenv("MEDKERN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(medmnist.DATASETS, "breastmnist",
                        dataclasses.replace(medmnist.DATASETS["breastmnist"], md5=md5))
    assert main(["download", "breastmnist", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "breastmnist.npz")
    assert main(["download", "pneumoniamnist", "--quiet"]) == 1  # not served: HTTP 404
    err = capsys.readouterr().err
    assert "404" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["breastmnist.npz"]
