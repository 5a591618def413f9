// Seeds through the official Runware JavaScript SDK (npm `@runware/sdk-js`), whose numbers are
// IEEE doubles: every seed mediagate returns must be one JavaScript holds exactly, consecutive
// results must have distinct consecutive seeds, sending a returned seed back must draw the same
// image, and the largest seed must come back as sent (no wrap). Run by tests/official_sdks.rs
// with MG_URL and MG_KEY set. Prints OK.
import { Runware } from "@runware/sdk-js";
import assert from "node:assert/strict";

const model = "mediagate:procedural@1";
const r = new Runware({ apiKey: process.env.MG_KEY, url: process.env.MG_URL });
await r.ensureConnection();
const draw = (extra) =>
  r.requestImages({ model, positivePrompt: "a seeded fox", width: 64, height: 64, outputType: "base64Data", ...extra });

// Drawn seeds: three results, three distinct consecutive seeds a double holds exactly.
const three = await draw({ numberResults: 3 });
assert.equal(three.length, 3);
const seeds = three.map((i) => i.seed).sort((a, b) => a - b);
for (const s of seeds) assert.ok(Number.isSafeInteger(s) && s >= 1, `seed ${s} is not exact in JavaScript`);
assert.deepEqual(seeds, [seeds[0], seeds[0] + 1, seeds[0] + 2], JSON.stringify(seeds));

// A returned seed sent back draws the same image.
const pick = three.find((i) => i.seed === seeds[1]);
const [again] = await draw({ seed: pick.seed });
assert.equal(again.seed, pick.seed);
assert.equal(again.imageBase64Data, pick.imageBase64Data, "the same seed drew a different image");

// The largest seed is the largest safe integer, and it comes back as sent.
const [max] = await draw({ seed: Number.MAX_SAFE_INTEGER });
assert.equal(max.seed, Number.MAX_SAFE_INTEGER);

// Results past the largest seed are refused, saying which seed would fit, instead of wrapping.
let failed = null;
try {
  await draw({ seed: Number.MAX_SAFE_INTEGER - 1, numberResults: 3 });
} catch (e) {
  failed = e;
}
assert.ok(failed, "three results from max - 1 were accepted");
const err = failed.error ?? failed;
assert.equal(err.code, "invalidParameterValue", JSON.stringify(failed));
assert.equal(err.parameter, "seed", JSON.stringify(err));
assert.ok(err.message.includes(String(Number.MAX_SAFE_INTEGER - 2)), err.message);

await r.disconnect();
console.log("OK");
process.exit(0);
