"""The official Runware Python SDK's methods whose models run on providers mediagate is
configured with: text models on an OpenAI-compatible chat server (the testkit's chat mock, which
answers `<prompt>, in rich detail (reply N)`), background removal and PhotoMaker on a scripted
mock of Runware's API. Run by tests/official_sdks.rs with MG_URL and MG_KEY set. Prints OK.
"""
import asyncio
import os

from runware import (
    IBackgroundRemovalSettings,
    IControlNetGeneral,
    IImageBackgroundRemoval,
    IImageCaption,
    IImageInference,
    ILora,
    IPhotoMaker,
    IRefiner,
    IVideoBackgroundRemoval,
    IVideoBackgroundRemovalInputs,
    IVideoCaption,
    IVideoCaptionInputs,
    IVideoUpscale,
    IVideoUpscaleInputs,
    IPromptEnhance,
    ISettings,
    ITextInference,
    ITextInferenceMessage,
    Runware,
    RunwareAPIError,
)


async def main():
    r = Runware(api_key=os.environ["MG_KEY"], url=os.environ["MG_URL"])
    await r.connect()

    enhanced = await r.promptEnhance(
        promptEnhancer=IPromptEnhance(prompt="a red fox", promptMaxLength=64, promptVersions=2, includeCost=True)
    )
    assert len(enhanced) == 2, enhanced
    texts = {e.text for e in enhanced}
    assert len(texts) == 2, texts
    assert all(t.startswith("a red fox, in rich detail (reply ") for t in texts), texts
    assert all(e.cost and e.cost > 0 for e in enhanced), enhanced

    try:
        await r.promptEnhance(promptEnhancer=IPromptEnhance(prompt="a red fox", promptMaxLength=5, promptVersions=1))
        raise SystemExit("expected invalidParameterValue")
    except RunwareAPIError as e:
        assert e.code == "invalidParameterValue", e.error_data
        assert e.error_data.get("parameter") == "promptMaxLength", e.error_data

    # imageCaption: the SDK sends an image it made here by its imageUUID, with the prompt as a list.
    image = await r.imageInference(
        requestImage=IImageInference(model="mediagate:procedural@1", positivePrompt="a caption source", width=64, height=64)
    )
    caption = await r.imageCaption(
        requestImageToText=IImageCaption(
            model="test:vision@1", inputImage=image[0].imageUUID, prompt=["name the shapes"], includeCost=True
        )
    )
    assert caption.text.startswith("name the shapes, in rich detail (reply "), caption
    assert caption.cost and caption.cost > 0, caption

    # imageBackgroundRemoval: forwarded to Runware's API (here a scripted mock) by runware-upstream.
    cutout = await r.imageBackgroundRemoval(
        removeImageBackgroundPayload=IImageBackgroundRemoval(
            inputImage=image[0].imageUUID,
            settings=IBackgroundRemovalSettings(rgba=[255, 255, 255, 0]),
            includeCost=True,
        )
    )
    assert cutout[0].imageUUID and cutout[0].imageURL.endswith(".png"), cutout
    assert cutout[0].cost and cutout[0].cost > 0, cutout

    # photoMaker: forwarded to Runware's API (here a scripted mock) by runware-upstream.
    made = await r.photoMaker(
        requestPhotoMaker=IPhotoMaker(
            model="test:photomaker@1",
            positivePrompt="a portrait of a man rwre",
            width=512,
            height=512,
            inputImages=[image[0].imageUUID],
            style="Photographic",
            strength=20,
        )
    )
    assert len(made) == 1 and made[0].imageURL.endswith(".png"), made

    # imageInference with a LoRA, a ControlNet guided by an image made here, and a refiner:
    # forwarded whole to Runware's API (the mock), the guide image as the bytes of that image.
    guided = await r.imageInference(
        requestImage=IImageInference(
            model="test:sdxl@1",
            positivePrompt="a castle guided by shapes",
            width=512,
            height=512,
            lora=[ILora(model="civitai:58390@62833", weight=0.8)],
            controlNet=[IControlNetGeneral(model="civitai:38784@44716", guideImage=image[0].imageUUID, weight=0.5)],
            refiner=IRefiner(model="civitai:101055@128080", startStep=30),
            scheduler="Euler",
        )
    )
    assert len(guided) == 1 and guided[0].imageURL.endswith(".png"), guided

    # The video forms of upscale, background removal and caption (async, as the SDK sends them):
    # forwarded to Runware's API (the mock), the video as the bytes of MG_VIDEO, then polled.
    video = os.environ["MG_VIDEO"]
    acks = [
        await r.videoUpscale(IVideoUpscale(model="test:vupscale@1", inputs=IVideoUpscaleInputs(video=video), upscaleFactor=2)),
        await r.videoBackgroundRemoval(
            IVideoBackgroundRemoval(model="test:rembg@1", inputs=IVideoBackgroundRemovalInputs(video=video))
        ),
        await r.videoCaption(IVideoCaption(model="test:vcaption@1", inputs=IVideoCaptionInputs(video=video))),
    ]
    for ack in acks[:2]:
        got = await r.getResponse(taskUUID=ack.taskUUID)
        assert len(got) == 1 and got[0].status == "success" and got[0].videoURL.endswith(".mp4"), got
    described = acks[2]
    if not isinstance(described, list):
        described = await r.getResponse(taskUUID=described.taskUUID)
    assert described[0].text == "a scripted caption", described

    # textInference: the conversation and settings reach the chat server; the reply comes back
    # with its finish reason, usage and seed.
    replies = await r.textInference(
        requestText=ITextInference(
            model="test:llm@1",
            messages=[ITextInferenceMessage(role="user", content="name a color")],
            settings=ISettings(maxTokens=16, systemPrompt="answer in one word"),
            seed=41,
            includeUsage=True,
            includeCost=True,
        )
    )
    assert len(replies) == 1, replies
    reply = replies[0]
    assert reply.text.startswith("name a color, in rich detail (reply "), reply
    assert reply.finishReason == "stop" and reply.seed == 41, reply
    assert reply.usage and reply.usage.totalTokens == 20, reply
    assert reply.cost and reply.cost > 0, reply

    await r.disconnect()
    print("OK", flush=True)


asyncio.run(asyncio.wait_for(main(), 120))
