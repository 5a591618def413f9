// The official Runway Node SDK (@runwayml/sdk) against mediagate: driven by tests/official_sdks.rs.
// Prints OK when every scenario passed; any failure throws (non-zero exit).
import RunwayML, { AuthenticationError, BadRequestError, toFile } from '@runwayml/sdk';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { deflateSync, crc32 } from 'node:zlib';

const base = process.env.MG_HTTP;
const key = process.env.MG_KEY;

function png(width, height) {
  const rows = [];
  for (let y = 0; y < height; y++) {
    rows.push(0);
    for (let x = 0; x < width; x++) rows.push((x * 7) % 256, (y * 5) % 256, 120);
  }
  const chunk = (kind, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(kind), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.from(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const dataUri = (b) => 'data:image/png;base64,' + b.toString('base64');

const client = new RunwayML({ apiKey: key, baseURL: base });

// text_to_image, waited for with the SDK's own poller.
let done = await client.textToImage
  .create({ model: 'gen4_image', promptText: 'a lighthouse at dusk', ratio: '1280:720' })
  .waitForTaskOutput();
assert.equal(done.status, 'SUCCEEDED');
const image = Buffer.from(await (await fetch(done.output[0])).arrayBuffer());
assert.equal(image.subarray(1, 4).toString(), 'PNG');

// image_to_video with a data-URI promptImage: a real MP4.
done = await client.imageToVideo
  .create({ model: 'gen4_turbo', promptImage: dataUri(png(96, 64)), ratio: '1280:720', duration: 2 })
  .waitForTaskOutput();
assert.equal(done.status, 'SUCCEEDED');
const video = Buffer.from(await (await fetch(done.output[0])).arrayBuffer());
assert.equal(video.subarray(4, 8).toString(), 'ftyp');

// An ephemeral upload, then its runway:// URI as an input.
const upload = await client.uploads.createEphemeral({ file: await toFile(png(80, 60), 'input.png') });
assert.ok(upload.uri.startsWith('runway://'));
done = await client.imageUpscale
  .create({ model: 'magnific_precision_upscaler_v2', imageUri: upload.uri, scaleFactor: 2 })
  .waitForTaskOutput();
assert.equal(done.status, 'SUCCEEDED');

// A bad key raises AuthenticationError.
await assert.rejects(
  new RunwayML({ apiKey: 'key_' + '0'.repeat(128), baseURL: base, maxRetries: 0 }).tasks.retrieve(done.id),
  AuthenticationError,
);

// A bad asset raises BadRequestError whose body points at the asset.
const wide = dataUri(readFileSync(new URL('../fixtures/wide_200x50.png', import.meta.url)));
try {
  await client.imageToVideo.create({
    model: 'gen4_turbo',
    promptImage: [{ uri: wide, position: 'first' }],
    ratio: '1280:720',
  });
  assert.fail('a bad asset was accepted');
} catch (e) {
  assert.ok(e instanceof BadRequestError, String(e));
  assert.deepEqual(e.error.issues[0].path, ['promptImage', 0, 'uri']);
  assert.equal(e.error.issues[0].code, 'custom');
}

// tasks.delete cancels a running task.
const long = await client.textToVideo.create({
  model: 'veo3.1',
  promptText: 'a long take',
  ratio: '1920:1080',
  duration: 8,
});
const deadline = Date.now() + 60000;
while ((await client.tasks.retrieve(long.id)).status !== 'RUNNING') {
  assert.ok(Date.now() < deadline, 'never running');
  await new Promise((r) => setTimeout(r, 50));
}
await client.tasks.delete(long.id);
assert.equal((await client.tasks.retrieve(long.id)).status, 'CANCELLED');

console.log('OK');
