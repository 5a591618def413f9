"""The official Runway Python SDK (`runwayml`) against mediagate: driven by tests/official_sdks.rs.

Prints OK when every scenario passed; any failure raises (non-zero exit, traceback on stderr).
"""

import base64
import os
import struct
import time
import zlib

import httpx
from runwayml import AuthenticationError, BadRequestError, RunwayML

BASE = os.environ["MG_HTTP"]
KEY = os.environ["MG_KEY"]


def encode_png(width, height, rows):
    """An RGB PNG of `rows` (each a filter byte and width * 3 bytes), built by hand so the test
    needs no imaging library."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


def png(width, height):
    """A small RGB PNG of gradients."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 7 % 256, y * 5 % 256, 120)) for y in range(height)
    )
    return encode_png(width, height, rows)


def random_png(width, height):
    """An RGB PNG of noise, which does not compress: about width * height * 3 bytes."""
    return encode_png(width, height, b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height)))


def data_uri(data):
    return "data:image/png;base64," + base64.b64encode(data).decode()


client = RunwayML(api_key=KEY, base_url=BASE)

# text_to_image, waited for with the SDK's own poller.
task = client.text_to_image.create(model="gen4_image", prompt_text="a lighthouse at dusk", ratio="1280:720")
done = task.wait_for_task_output()
assert done.status == "SUCCEEDED", done
image = httpx.get(done.output[0]).content
assert image.startswith(b"\x89PNG"), image[:16]

# image_to_video with a data-URI promptImage: a real MP4.
task = client.image_to_video.create(
    model="gen4_turbo", prompt_image=data_uri(png(96, 64)), prompt_text="waves", ratio="1280:720", duration=2
)
done = task.wait_for_task_output()
assert done.status == "SUCCEEDED", done
video = httpx.get(done.output[0]).content
assert video[4:8] == b"ftyp", video[:16]

# A 3.2 MB data URI (Runway takes them up to 5 MB): read whole, not cut at a smaller body limit.
noisy = random_png(1000, 800)
big = data_uri(noisy)
assert 3_000_000 < len(big) < 5_000_000, len(big)
done = client.image_to_video.create(
    model="gen4_turbo", prompt_image=big, prompt_text="noise", ratio="1280:720", duration=2
).wait_for_task_output()
assert done.status == "SUCCEEDED", done

# A usage window that ends before it starts is a BadRequestError, not an empty answer.
try:
    client.organization.retrieve_usage(start_date="2026-03-10", before_date="2026-03-01")
    raise AssertionError("a window ending before its start was accepted")
except BadRequestError as e:
    assert e.body["issues"][0]["path"] == ["beforeDate"], e.body

# An ephemeral upload, then its runway:// URI as an input.
upload = client.uploads.create_ephemeral(file=("input.png", png(80, 60)))
assert upload.uri.startswith("runway://"), upload
done = client.image_upscale.create(
    model="magnific_precision_upscaler_v2", image_uri=upload.uri, scale_factor=2
).wait_for_task_output()
assert done.status == "SUCCEEDED", done

# A bad key raises AuthenticationError.
try:
    RunwayML(api_key="key_" + "0" * 128, base_url=BASE, max_retries=0).tasks.retrieve(task.id)
    raise AssertionError("a bad key was accepted")
except AuthenticationError:
    pass

# A bad asset raises BadRequestError whose body points at the asset.
with open(os.path.join(os.path.dirname(__file__), "..", "fixtures", "wide_200x50.png"), "rb") as f:
    wide = data_uri(f.read())
try:
    client.image_to_video.create(
        model="gen4_turbo", prompt_image=[{"uri": wide, "position": "first"}], ratio="1280:720"
    )
    raise AssertionError("a bad asset was accepted")
except BadRequestError as e:
    issue = e.body["issues"][0]
    assert issue["path"] == ["promptImage", 0, "uri"], e.body
    assert issue["code"] == "custom", e.body
    assert "aspect ratio" in issue["message"], e.body

# tasks.delete cancels a running task.
task = client.text_to_video.create(model="veo3.1", prompt_text="a long take", ratio="1920:1080", duration=8)
deadline = time.time() + 60
while client.tasks.retrieve(task.id).status != "RUNNING":
    assert time.time() < deadline, "never running"
    time.sleep(0.05)
client.tasks.delete(task.id)
assert client.tasks.retrieve(task.id).status == "CANCELLED"

print("OK", flush=True)
