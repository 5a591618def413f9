// The official Runware JavaScript SDK (npm `@runware/sdk-js`) against mediagate's WebSocket API.
// Run by tests/official_sdks.rs with MG_URL and MG_KEY set. Prints RESTART and waits for a line
// on stdin while the harness restarts the server, then checks the SDK reconnected. Prints OK.
import { Runware } from "@runware/sdk-js";
import assert from "node:assert/strict";
import readline from "node:readline";

const model = "mediagate:procedural@1";
const r = new Runware({ apiKey: process.env.MG_KEY, url: process.env.MG_URL });
await r.ensureConnection();

const images = await r.requestImages({ model, positivePrompt: "a js fox", width: 128, height: 128, numberResults: 2 });
assert.equal(images.length, 2);
for (const i of images) assert.ok(i.imageURL && i.imageUUID && i.taskUUID, JSON.stringify(i));

// Image to image on the stand-in (the seed image by a result's imageUUID); a LoRA is refused
// by the stand-in, which does not apply one, with the parameter named.
const edited = await r.requestImages({
  model, positivePrompt: "the same fox at night", width: 128, height: 128, seedImage: images[0].imageUUID, strength: 0.5,
});
assert.ok(edited.length === 1 && edited[0].imageURL, JSON.stringify(edited));
let refused = null;
try {
  await r.requestImages({ model, positivePrompt: "a fox", width: 128, height: 128, lora: [{ model: "civitai:58390@62833", weight: 0.8 }] });
} catch (e) {
  refused = e.error ?? e;
}
assert.ok(refused, "expected the LoRA to be refused");
assert.equal(refused.code, "unsupportedParameterForModel", JSON.stringify(refused));
assert.equal(refused.parameter, "lora", JSON.stringify(refused));

// controlNetPreProcess (async, polled by the SDK): a canny guide of a result, by the built-in
// edge detector, as white edges on black.
const guide = await r.controlNetPreProcess({ inputImage: images[0].imageUUID, preProcessorType: "canny", includeCost: true });
assert.ok(guide.guideImageUUID && guide.guideImageURL.endsWith(".png") && guide.cost > 0, JSON.stringify(guide));

const up = await r.upscaleGan({ inputImage: images[0].imageUUID, upscaleFactor: 2 });
assert.ok(up.imageURL && up.imageUUID, JSON.stringify(up));

// vectorize: traced by the built-in vtracer model into a real SVG.
const svg = await r.vectorize({ model: "mediagate:vtracer@1", inputs: { image: images[0].imageUUID }, includeCost: true });
assert.equal(svg.taskType, "vectorize", JSON.stringify(svg));
assert.ok(svg.imageURL.endsWith(".svg") && svg.cost > 0, JSON.stringify(svg));
const body = await (await fetch(svg.imageURL)).text();
assert.ok(body.includes("<svg") && body.includes("<path"), body.slice(0, 200));

// imageUpload and mediaStorage: stored by the server, usable by UUID.
const png = Buffer.from(await (await fetch(images[0].imageURL)).arrayBuffer()).toString("base64");
const uploaded = await r.imageUpload({ image: `data:image/png;base64,${png}` });
assert.ok(uploaded.imageUUID && uploaded.imageURL.startsWith("http"), JSON.stringify(uploaded));
const media = await r.mediaStorage({ media: `data:image/png;base64,${png}` });
assert.ok(media.mediaUUID && media.mediaURL, JSON.stringify(media));

// videoInference (async, polled by the SDK with getResponse), then getResponse directly.
const videos = await r.videoInference({
  model: "mediagate:procedural-video@1", positivePrompt: "waves on a shore", width: 128, height: 128, duration: 1, fps: 4,
});
assert.ok(videos.length === 1 && videos[0].videoURL.endsWith(".mp4"), JSON.stringify(videos));
const polled = await r.getResponse({ taskUUID: videos[0].taskUUID });
assert.equal(polled[0].status, "success", JSON.stringify(polled));
assert.equal(polled[0].videoUUID, videos[0].videoUUID, JSON.stringify(polled));

// audioInference: the procedural audio stand-in's WAV.
const sounds = await r.audioInference({ model: "mediagate:procedural-audio@1", positivePrompt: "a calm piano", duration: 2 });
const sound = Array.isArray(sounds) ? sounds[0] : sounds;
assert.ok(sound.audioURL.endsWith(".wav") && sound.audioUUID, JSON.stringify(sounds));
const wav = Buffer.from(await (await fetch(sound.audioURL)).arrayBuffer());
assert.equal(wav.subarray(0, 4).toString(), "RIFF");

// getTaskDetails: an earlier task's request and response, as stored.
const details = await r.getTaskDetails({ taskUUID: images[0].taskUUID });
assert.equal(details.request[0].positivePrompt, "a js fox", JSON.stringify(details));
assert.ok(images.some((i) => i.imageURL === details.response.data[0].imageURL), JSON.stringify(details));

// modelSearch: the catalog, filtered by the server.
const models = await r.modelSearch({ category: "checkpoint", limit: 2 });
assert.equal(models.results.length, 2, JSON.stringify(models));
assert.ok(models.totalResults > 2, JSON.stringify(models));
for (const m of models.results) assert.equal(m.category, "checkpoint", JSON.stringify(m));

let failed = null;
try {
  await r.requestImages({ model, positivePrompt: "a bad width", width: 100, height: 128 });
} catch (e) {
  failed = e;
}
assert.ok(failed, "expected an error");
const err = failed.error ?? failed;
assert.equal(err.code, "invalidParameterValue", JSON.stringify(failed));
assert.equal(err.parameter, "width");
assert.ok(err.taskUUID && err.message, JSON.stringify(err));

console.log("RESTART");
const rl = readline.createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once("line", resolve));
rl.close();

const again = await r.requestImages({ model, positivePrompt: "after the restart", width: 64, height: 64 });
assert.ok(again.length === 1 && again[0].imageURL, JSON.stringify(again));
await r.disconnect();
console.log("OK");
process.exit(0);
