// The official Runware JavaScript SDK's methods whose models run on providers mediagate is
// configured with: text models on an OpenAI-compatible chat server (the testkit's chat mock, which
// answers `<prompt>, in rich detail (reply N)`), background removal and PhotoMaker on a scripted
// mock of Runware's API. Run by tests/official_sdks.rs with MG_URL and MG_KEY set. Prints OK.
import { Runware } from "@runware/sdk-js";
import assert from "node:assert/strict";

const r = new Runware({ apiKey: process.env.MG_KEY, url: process.env.MG_URL });
await r.ensureConnection();

const enhanced = await r.promptEnhance({ prompt: "a blue heron", promptMaxLength: 64, promptVersions: 3, includeCost: true });
assert.equal(enhanced.length, 3, JSON.stringify(enhanced));
const texts = new Set(enhanced.map((e) => e.text));
assert.equal(texts.size, 3, JSON.stringify(enhanced));
for (const e of enhanced) {
  assert.ok(e.text.startsWith("a blue heron, in rich detail (reply "), JSON.stringify(e));
  assert.ok(e.cost > 0, JSON.stringify(e));
}

let failed = null;
try {
  await r.enhancePrompt({ prompt: "", promptMaxLength: 64 });
} catch (e) {
  failed = e;
}
assert.ok(failed, "expected an error");
const err = failed.error ?? failed;
assert.equal(err.code, "invalidParameterValue", JSON.stringify(failed));
assert.equal(err.parameter, "prompt");

// requestImageToText (taskType caption): an image made here, described.
const [image] = await r.requestImages({ model: "mediagate:procedural@1", positivePrompt: "a caption source", width: 64, height: 64 });
const caption = await r.requestImageToText({ model: "test:vision@1", inputImage: image.imageUUID, includeCost: true });
assert.equal(caption.taskType, "caption", JSON.stringify(caption));
assert.ok(caption.text.startsWith("Describe this image"), JSON.stringify(caption));
assert.ok(caption.cost > 0, JSON.stringify(caption));

// removeImageBackground: forwarded to Runware's API (here a scripted mock) by runware-upstream.
const cutout = await r.removeImageBackground({
  inputImage: image.imageUUID, model: "test:rembg@1", settings: { rgba: [255, 255, 255, 0] }, includeCost: true,
});
assert.ok(cutout.imageURL.endsWith(".png") && cutout.cost > 0, JSON.stringify(cutout));

// photoMaker: forwarded to Runware's API (here a scripted mock) by runware-upstream.
const made = await r.photoMaker({
  model: "test:photomaker@1", positivePrompt: "a portrait of a man rwre", width: 512, height: 512,
  inputImages: [image.imageUUID], style: "Photographic", strength: 20, numberResults: 1,
});
assert.ok(made.length === 1 && made[0].imageURL.endsWith(".png"), JSON.stringify(made));

// requestImages with a LoRA and a ControlNet guided by an image made here: forwarded whole to
// Runware's API (the mock), the guide image as the bytes of that image.
const guided = await r.requestImages({
  model: "test:sdxl@1", positivePrompt: "a castle guided by shapes", width: 512, height: 512,
  lora: [{ model: "civitai:58390@62833", weight: 0.8 }],
  controlNet: [{ model: "civitai:38784@44716", guideImage: image.imageUUID, weight: 0.5, startStepPercentage: 0, endStepPercentage: 80 }],
});
assert.ok(guided.length === 1 && guided[0].imageURL.endsWith(".png"), JSON.stringify(guided));

// imageMasking: forwarded to Runware's API (the mock); the mask and its detections come back.
const masked = await r.imageMasking({ model: "test:masker@1", inputImage: image.imageUUID, confidence: 0.3, includeCost: true });
assert.ok(masked.maskImageUUID && masked.maskImageURL.endsWith(".png") && masked.cost > 0, JSON.stringify(masked));
assert.deepEqual(masked.detections, [{ x_min: 1, y_min: 2, x_max: 5, y_max: 7 }], JSON.stringify(masked));

// textInference (top-level settings, as this SDK sends them).
const replies = await r.textInference({
  model: "test:llm@1",
  messages: [{ role: "user", content: "name a color" }],
  maxTokens: 16,
  numberResults: 2,
  includeCost: true,
});
assert.equal(replies.length, 2, JSON.stringify(replies));
for (const reply of replies) {
  assert.ok(reply.text.startsWith("name a color, in rich detail (reply "), JSON.stringify(reply));
  assert.equal(reply.finishReason, "stop", JSON.stringify(reply));
  assert.ok(reply.cost > 0, JSON.stringify(reply));
}

await r.disconnect();
console.log("OK");
process.exit(0);
