"""The official Runware Python SDK with a mistyped key: the application must get the SDK's
invalid-key error promptly, not wait for its own timeout (issue 16, point 12).

Run by tests/official_sdks.rs with MG_URL and MG_KEY set (MG_KEY is the good key; this script
spoils it). Prints OK.
"""
import asyncio
import os
import time

from runware import IImageInference, Runware


async def main():
    wrong = os.environ["MG_KEY"][:-4] + "0000"
    r = Runware(api_key=wrong, url=os.environ["MG_URL"])
    started = time.monotonic()
    try:
        await asyncio.wait_for(_use(r), timeout=60)
        raise SystemExit("a wrong key was accepted")
    except asyncio.TimeoutError:
        raise SystemExit("the SDK hung on a wrong key for 60 s")
    except SystemExit:
        raise
    except Exception as e:  # the SDK raises ConnectionError with the server's message
        took = time.monotonic() - started
        message = str(e)
        assert "key" in message.lower(), f"the error does not say the key is wrong: {message!r}"
        assert took < 15, f"the wrong key took {took:.1f} s to reach the application"
        print(f"wrong key reported in {took:.2f} s: {message}", flush=True)
    print("OK", flush=True)


async def _use(r):
    await r.connect()
    await r.imageInference(
        requestImage=IImageInference(model="mediagate:procedural@1", positivePrompt="x", width=128, height=128)
    )


asyncio.run(main())
