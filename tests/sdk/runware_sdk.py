"""The official Runware Python SDK (PyPI `runware`) against mediagate's WebSocket API.

Run by tests/official_sdks.rs with MG_URL and MG_KEY set. Prints RESTART and waits for a line
on stdin while the harness restarts the server, then checks the SDK reconnected. Prints OK.
"""
import asyncio
import base64
import os
import sys
import tempfile
import urllib.request

from runware import (
    IAudioInference,
    IImageInference,
    IImageUpscale,
    IInputs,
    ILora,
    IModelSearch,
    IOutpaint,
    IVectorize,
    Runware,
    RunwareAPIError,
)

MODEL = "mediagate:procedural@1"


async def generate(r, **kw):
    return await r.imageInference(requestImage=IImageInference(model=MODEL, **kw))


async def main():
    r = Runware(api_key=os.environ["MG_KEY"], url=os.environ["MG_URL"])
    await r.connect()

    images = await generate(r, positivePrompt="an sdk fox", width=128, height=128, numberResults=2, includeCost=True)
    assert len(images) == 2, images
    assert all(i.imageUUID and i.imageURL and i.taskUUID for i in images), images
    assert images[0].seed != images[1].seed, images
    assert abs(images[0].cost - 0.0006) < 1e-9, images[0].cost

    # Image to image on the stand-in: the seed image by a result's imageUUID, and outpainting it.
    edited = await generate(
        r, positivePrompt="the same fox at night", width=128, height=128, seedImage=images[0].imageUUID, strength=0.5
    )
    assert edited and edited[0].imageURL and edited[0].imageUUID != images[0].imageUUID, edited
    grown = await generate(
        r, positivePrompt="more of the fox", width=256, height=128, seedImage=images[0].imageUUID,
        outpaint=IOutpaint(right=128, blur=8),
    )
    assert grown and grown[0].imageURL, grown
    # A LoRA needs a model whose provider applies it; the stand-in says so through the SDK.
    try:
        await generate(r, positivePrompt="a fox", width=128, height=128, lora=[ILora(model="civitai:58390@62833", weight=0.8)])
        raise SystemExit("expected unsupportedParameterForModel")
    except RunwareAPIError as e:
        assert e.code == "unsupportedParameterForModel", e.error_data
        assert e.error_data.get("parameter") == "lora", e.error_data

    up = await r.imageUpscale(upscaleGanPayload=IImageUpscale(inputImage=images[0].imageUUID, upscaleFactor=2))
    assert up and up[0].imageUUID and up[0].imageURL, up

    # imageVectorize (taskType vectorize): traced by the built-in vtracer model into a real SVG.
    svg = await r.imageVectorize(
        vectorizePayload=IVectorize(inputs=IInputs(image=images[0].imageUUID), model="mediagate:vtracer@1", includeCost=True)
    )
    assert svg and svg[0].imageUUID and svg[0].imageURL.endswith(".svg"), svg
    assert svg[0].cost and svg[0].cost > 0, svg
    body = urllib.request.urlopen(svg[0].imageURL).read()
    assert body.startswith(b"<?xml") and b"<svg" in body and b"<path" in body, body[:200]

    # uploadImage (a local file: the SDK passes data URIs through without uploading) and
    # uploadMedia: stored by the server, usable by UUID.
    png = urllib.request.urlopen(images[0].imageURL).read()
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(png)
    uploaded = await r.uploadImage(f.name)
    os.unlink(f.name)
    assert uploaded.imageUUID and uploaded.imageURL.startswith("http"), uploaded
    assert urllib.request.urlopen(uploaded.imageURL).read() == png
    media = await r.uploadMedia("data:image/png;base64," + base64.b64encode(png).decode())
    assert media.mediaUUID, media

    # audioInference: the procedural audio stand-in's WAV, with its seed.
    sounds = await r.audioInference(
        requestAudio=IAudioInference(
            model="mediagate:procedural-audio@1", positivePrompt="a calm piano", duration=2, seed=5, includeCost=True
        )
    )
    assert len(sounds) == 1 and sounds[0].audioURL.endswith(".wav") and sounds[0].seed == 5, sounds
    wav = urllib.request.urlopen(sounds[0].audioURL).read()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", wav[:16]

    # getTaskDetails: the first task's request and response, as stored.
    details = await r.getTaskDetails(taskUUID=images[0].taskUUID)
    request = details.request[0]
    prompt = request.get("positivePrompt") if isinstance(request, dict) else request.positivePrompt
    assert prompt == "an sdk fox", details.request
    # The SDK turns the response envelope's `data` into a list of its result types.
    first = details.response[0]
    url = first.get("imageURL") if isinstance(first, dict) else first.imageURL
    assert url in {i.imageURL for i in images}, details.response

    # modelSearch: the catalog, filtered by the server.
    models = await r.modelSearch(payload=IModelSearch(search="vtracer"))
    assert models.totalResults == 1, models
    assert models.results[0].air == "mediagate:vtracer@1" and models.results[0].version == "1", models

    # The SDK's newer `inputs: {image}` form is not read yet; the error names the form it got.
    try:
        await r.imageUpscale(upscaleGanPayload=IImageUpscale(inputs={"image": images[0].imageUUID}, upscaleFactor=2))
        raise SystemExit("expected the inputs form to be refused")
    except RunwareAPIError as e:
        assert e.code == "missingParameter", e.error_data
        message = e.error_data.get("message", "")
        assert "'inputs': {'image': ...}" in message and "'inputImage'" in message, e.error_data

    try:
        await generate(r, positivePrompt="a bad width", width=100, height=128)
        raise SystemExit("expected invalidParameterValue")
    except RunwareAPIError as e:
        assert e.code == "invalidParameterValue", e.error_data
        assert e.error_data.get("parameter") == "width", e.error_data
        assert e.error_data.get("taskUUID") and e.error_data.get("message"), e.error_data

    print("RESTART", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    again = await generate(r, positivePrompt="after the restart", width=64, height=64)
    assert again and again[0].imageURL, again
    await r.disconnect()
    print("OK", flush=True)


asyncio.run(asyncio.wait_for(main(), 180))
