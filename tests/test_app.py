"""`fplnet app`: the functions behind the page (run everywhere) and the page itself in headless
Chromium driven by Selenium (run where `make browser` could install Debian's chromium and
chromium-driver; skipped with the reason elsewhere). The browser test also takes the screenshot
the README shows: `FPLNET_APP_SCREENSHOT=docs/images/app.png make test` writes it there; without
the variable it goes to the test's temporary folder, so a test run leaves the checkout clean.

All inference here is the eager variant: the fast path would spend its time in torch.compile.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fplnet.cli import build_parser, main
from fplnet.data.info import CAMVID
from fplnet.engine import app as web
from fplnet.fast import Variant

from _helpers import write_video

REPO = Path(__file__).resolve().parents[1]
FRAME = web.DEMO_FRAMES[0]


@pytest.fixture(scope="module")
def segmenter():
    return web.load_segmenter("camvid", "eager")


def palette_indices(picture: np.ndarray, palette) -> np.ndarray:
    """H x W x 3 colours -> the class of each pixel, -1 where the colour is not in ``palette``."""
    codes = picture[..., 0].astype(np.int64) << 16 | picture[..., 1].astype(np.int64) << 8 | picture[..., 2]
    indices = np.full(codes.shape, -1)
    for index, (r, g, b) in enumerate(palette):
        indices[codes == (r << 16 | g << 8 | b)] = index
    return indices


# --- the functions behind the page ---------------------------------------------------------------

def test_segment_image(segmenter):
    result = web.segment_image(segmenter, FRAME, alpha=0.3)
    rgb = np.asarray(Image.open(FRAME).convert("RGB"))
    assert np.array_equal(result.image, rgb)
    assert np.array_equal(result.labels, segmenter.predict(rgb))
    assert np.array_equal(result.mask, segmenter.colorize(result.labels))
    assert np.array_equal(result.overlay, segmenter.overlay(rgb, result.labels, 0.3))
    counts = np.bincount(result.labels.ravel(), minlength=CAMVID.num_classes)
    assert [s.fraction for s in result.shares] == pytest.approx(counts / counts.sum())
    assert [s.name for s in result.shares] == list(CAMVID.class_names)
    assert result.latency_ms > 0


def test_class_shares_and_legend():
    labels = np.array([[0, 0], [3, 10]], dtype=np.uint8)
    shares = web.class_shares(labels, CAMVID)
    assert [s.fraction for s in shares] == [0.5, 0, 0, 0.25, 0, 0, 0, 0, 0, 0, 0.25]
    assert shares[3].color == CAMVID.palette[3]
    html = web.legend_html(shares)
    # Every class is listed, the largest share first, absent classes too (greyed out).
    positions = [html.index(f">{name}<") for name in CAMVID.class_names]
    assert positions[0] < positions[3] < positions[1]
    assert "50.0%" in html and "25.0%" in html


def test_read_image_explains_what_is_wrong(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ValueError, match=r"holiday\.png is not an image; upload a PNG"):
        web.read_image(text, name="holiday.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(FRAME.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cut\.png could not be read as an image \(.*truncated"):
        web.read_image(truncated)


def test_segment_video(segmenter, tmp_path):
    pytest.importorskip("av")
    frames = [np.asarray(Image.open(path).convert("RGB"))[::2, ::2] for path in web.DEMO_FRAMES[:3]]  # 180 x 240
    write_video(tmp_path / "clip.mp4", frames)
    calls = []
    result = web.segment_video(segmenter, tmp_path / "clip.mp4", tmp_path / "out", alpha=0,
                               progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result.path == tmp_path / "out" / "clip_mask.mp4"   # opacity 0: the mask itself
    assert (result.frames, result.size) == (3, (240, 180)) and result.latency_ms > 0
    # A portrait phone clip (landscape frames and a -90 degree flag) is shown, segmented and
    # reported upright.
    write_video(tmp_path / "portrait.mp4", [np.ascontiguousarray(np.rot90(f, 1)) for f in frames[:1]], rotation=-90)
    assert web.segment_video(segmenter, tmp_path / "portrait.mp4", tmp_path / "out").size == (240, 180)
    import av
    with av.open(str(result.path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 3
    # H.264 blurs colour edges, so compare the first frame's mask where it is a flat colour.
    expected = segmenter.colorize(segmenter.predict(frames[0]))
    close = np.abs(decoded[0].astype(int) - expected.astype(int)).max(axis=2) <= 24
    assert close.mean() > 0.9


def test_segment_video_refuses_what_it_cannot_decode(segmenter, tmp_path):
    pytest.importorskip("av")
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video")
    with pytest.raises(ValueError, match=r"clip\.mp4 could not be decoded as a video .*; upload an MP4"):
        web.segment_video(segmenter, fake, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_variant_menu_and_segmenter_cache():
    labels = [variant.label for variant in web.VARIANTS]
    assert len(set(labels)) == len(labels)
    assert {"eager", "fast"} <= {variant.label for variant in web.available_variants()}
    # One entry per backend variant, each a spec fplnet.fast accepts; OpenVINO's only where it is installed.
    for variant in web.VARIANTS:
        assert (variant.spec == variant.label == "fast") or Variant.parse(variant.spec).name == variant.label
    openvino = {"openvino", "openvino+int8"}
    assert openvino <= set(labels)
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
        assert openvino <= {variant.label for variant in web.available_variants()}
    assert web.load_segmenter("camvid", "eager") is web.load_segmenter("camvid", "eager")
    assert str(web.load_segmenter("camvid", "eager").variant) == "eager"
    with pytest.raises(ValueError, match="unknown variant 'int9'; choose one of eager, fast"):
        web.find_variant("int9")
    with pytest.raises(ValueError, match=r"no/such/checkpoint\.pt does not exist"):
        web.load_segmenter("no/such/checkpoint.pt", "eager")


def test_a_rewritten_checkpoint_is_loaded_again_and_a_network_page_offers_only_its_weights(tmp_path):
    from _helpers import make_checkpoint
    checkpoint = make_checkpoint(tmp_path / "best.pt")
    first = web.load_segmenter(str(checkpoint), "eager")
    assert web.load_segmenter(str(checkpoint), "eager") is first
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # training wrote it again
    assert web.load_segmenter(str(checkpoint), "eager") is not first
    assert web.offered_weights("/etc/passwd", ["camvid"], any_path=True) == "/etc/passwd"
    with pytest.raises(ValueError, match="this server offers only these weights: camvid"):
        web.offered_weights("/etc/passwd", ["camvid"], any_path=False)


def test_command_line_defaults_to_this_machine_only():
    args = build_parser().parse_args(["app"])
    assert (args.checkpoint, args.variant, args.host, args.port) == ("camvid", "eager", "127.0.0.1", 7860)


# --- the page in a real browser ------------------------------------------------------------------

BROWSER_HINT = ("`make browser` installs Debian's chromium and chromium-driver (needs apt-get and root); "
                "the functions behind the page are tested above without a browser")


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("gradio", reason="the web app needs Gradio: pip install 'fplnet[app]'")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the dev extra)")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(f"no {'Chromium' if binary is None else 'chromedriver'} on this machine; {BROWSER_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1250"):
        options.add_argument(argument)
    try:
        # An explicit driver: Selenium Manager would otherwise try to download one.
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    except WebDriverException as err:
        pytest.skip(f"Chromium did not start ({str(err).splitlines()[0]}); {BROWSER_HINT}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = web.build_app("camvid", "eager")
    url = web.serve(app, "127.0.0.1", port, block=False)
    browser.get(url)
    yield browser
    app.close()


def wait_for(condition, timeout: float = 120.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def image_src(driver, element_id: str, previous: str = "") -> str:
    from selenium.webdriver.common.by import By
    images = driver.find_elements(By.CSS_SELECTOR, f"#{element_id} img")
    source = images[0].get_attribute("src") if images else ""
    return source if source and source != previous else ""


def fetch_image(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.asarray(Image.open(BytesIO(response.read())).convert("RGB"))


def upload(driver, element_id: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    inputs = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f"#{element_id} input[type=file]"),
                      timeout=60, what=f"the file input of #{element_id}")
    inputs[0].send_keys(str(path))


def test_page_segments_an_uploaded_frame_like_fplnet_predict(page, segmenter, tmp_path):
    from selenium.webdriver.common.by import By
    upload(page, "input-image", FRAME)
    mask_url = wait_for(lambda: image_src(page, "mask-image"), what="the colour mask")
    mask = fetch_image(mask_url)
    assert mask.shape == (360, 480, 3)
    classes = palette_indices(mask, CAMVID.palette)
    assert (classes >= 0).all(), "the mask holds colours outside the CamVid palette"

    assert main(["predict", "--checkpoint", "camvid", str(FRAME), "--output", str(tmp_path), "--no-fast",
                 "--overlay", "0", "--quiet"]) == 0
    expected = np.asarray(Image.open(tmp_path / f"{FRAME.stem}_mask.png").convert("RGB"))
    assert np.array_equal(mask, expected), f"{(mask != expected).any(axis=2).mean():.4%} of the pixels differ"

    legend = wait_for(lambda: page.find_element(By.ID, "legend").text, what="the legend")
    assert all(name in legend for name in CAMVID.class_names) and "%" in legend
    assert "ms per frame at 480x360" in page.find_element(By.CSS_SELECTOR, "#latency textarea").get_attribute("value")
    overlay_url = wait_for(lambda: image_src(page, "overlay-image"), what="the overlay")

    # Opacity 0: the overlay becomes the input itself, without running the model again.
    set_opacity(page, 0)
    overlay_url = wait_for(lambda: image_src(page, "overlay-image", overlay_url), what="the new overlay")
    assert np.array_equal(fetch_image(overlay_url), np.asarray(Image.open(FRAME).convert("RGB")))

    # A shipped frame picked from the examples; its latency is the steady one (same size, no setup).
    set_opacity(page, 0.6)
    page.find_elements(By.CSS_SELECTOR, "#examples button.gallery-item")[1].click()
    mask_url = wait_for(lambda: image_src(page, "mask-image", mask_url), what="the second frame's mask")
    expected = segmenter.colorize(segmenter.predict(web.DEMO_FRAMES[1]))   # the eager variant, as the page
    assert np.array_equal(fetch_image(mask_url), expected)
    latency = page.find_element(By.CSS_SELECTOR, "#latency textarea").get_attribute("value")
    assert "ms per frame at 480x360" in latency and "one-time setup" not in latency
    time.sleep(1)   # the overlay and legend images settle
    screenshot = Path(os.environ.get("FPLNET_APP_SCREENSHOT") or tmp_path / "app.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size[0] > 0


def set_opacity(driver, value: float) -> None:
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.CSS_SELECTOR, "#opacity input[type=number]")
    box.clear()
    box.send_keys(f"{value}\n")


def test_page_explains_files_it_cannot_use(page, tmp_path):
    from selenium.webdriver.common.by import By
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    upload(page, "input-image", text)   # refused by the page itself (the input takes image/*)
    wait_for(lambda: "Invalid file type: notes.txt" in page.find_element(By.TAG_NAME, "body").text,
             timeout=30, what="the invalid file type message")
    disguised = tmp_path / "holiday.png"
    disguised.write_text("not an image either")
    upload(page, "input-image", disguised)   # passes the page's check; fplnet reads it and says why not
    message = wait_for(lambda: page.find_element(By.ID, "message").text, timeout=60, what="fplnet's message")
    assert "holiday.png is not an image; upload a PNG" in message
    assert "Traceback" not in page.find_element(By.TAG_NAME, "body").text


def test_page_segments_a_video(page, tmp_path):
    pytest.importorskip("av")
    from selenium.webdriver.common.by import By
    frames = [np.asarray(Image.open(path).convert("RGB"))[::2, ::2] for path in web.DEMO_FRAMES[:3]]
    write_video(tmp_path / "clip.mp4", frames)
    # The page renders in the browser: wait for the tab, a loaded machine takes a while to draw it.
    wait_for(lambda: page.find_elements(By.XPATH, "//button[@role='tab' and normalize-space()='Video']"),
             timeout=60, what="the Video tab")[0].click()
    upload(page, "input-video", tmp_path / "clip.mp4")
    wait_for(lambda: page.find_elements(By.CSS_SELECTOR, "#input-video video"), timeout=60, what="the uploaded video")
    page.find_element(By.ID, "run-video").click()
    source = wait_for(lambda: [v.get_attribute("src") for v in page.find_elements(By.CSS_SELECTOR, "#output-video video")
                               if v.get_attribute("src")], what="the segmented video")[0]
    import av
    with urllib.request.urlopen(source, timeout=30) as response:
        (tmp_path / "segmented.mp4").write_bytes(response.read())
    with av.open(str(tmp_path / "segmented.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    latency = page.find_element(By.CSS_SELECTOR, "#video-latency textarea").get_attribute("value")
    assert "ms per frame at 240x180, network at 480x360" in latency and "median of 3 frames" in latency
