"""The official Runware Python SDK (PyPI `runware`) waiting for a short video, with its defaults.

Run by tests/official_sdks.rs with MG_URL and MG_KEY set. `videoInference` defaults to async
delivery: the SDK gets the acknowledgement, then `getResponse` sends one poll and waits up to
RUNWARE_VIDEO_INITIAL_TIMEOUT (30 s) for the result to be pushed on the socket before polling
again. mediagate pushes it when the task ends, so the video arrives as soon as it is rendered;
without the push it arrives only after that 30 s wait, which the bound below catches.
Prints `ELAPSED <seconds>` (from submission to the video in hand) and OK.
"""
import asyncio
import os
import time

from runware import IVideoInference, Runware

MODEL = "mediagate:procedural-video@1"


async def main():
    r = Runware(api_key=os.environ["MG_KEY"], url=os.environ["MG_URL"])
    await r.connect()

    start = time.monotonic()
    ack = await r.videoInference(
        requestVideo=IVideoInference(
            model=MODEL, positivePrompt="a quick sdk clip", width=128, height=128, duration=1, fps=8
        )
    )
    assert ack.taskUUID, ack
    videos = await r.getResponse(taskUUID=ack.taskUUID)
    elapsed = time.monotonic() - start
    assert len(videos) == 1, videos
    assert videos[0].videoURL and videos[0].status == "success", videos

    # Two videos at once, each polled on the same socket: each gets its own, once.
    acks = [
        await r.videoInference(
            requestVideo=IVideoInference(
                model=MODEL, positivePrompt=f"clip {n}", width=128, height=128, duration=1, fps=8
            )
        )
        for n in range(2)
    ]
    start2 = time.monotonic()
    pair = await asyncio.gather(*(r.getResponse(taskUUID=a.taskUUID) for a in acks))
    elapsed = max(elapsed, time.monotonic() - start2)
    for ack, got in zip(acks, pair):
        assert len(got) == 1 and got[0].taskUUID == ack.taskUUID, (ack, got)
    assert pair[0][0].videoUUID != pair[1][0].videoUUID, pair

    await r.disconnect()
    # Rendering a 1 s 128x128 clip takes well under a second; 15 s is half the SDK's wait, so
    # only a result left for the SDK's next poll goes over it.
    assert elapsed < 15, f"the video took {elapsed:.1f} s to reach the SDK"
    print(f"ELAPSED {elapsed:.2f}", flush=True)
    print("OK", flush=True)


asyncio.run(asyncio.wait_for(main(), 180))
