//! A minimal WebM (Matroska subset) writer for one VP8 track.
//!
//! Layout: EBML header, then one Segment of known size holding SeekHead, Info (with the
//! stand-in label as Title), Tracks, one Cluster per second of SimpleBlocks, and Cues so
//! players can seek. Element IDs and the WebM profile follow the Matroska specification
//! (RFC 9559) and the WebM container guidelines. No DateUTC element: output must not depend on
//! the clock.

/// Matroska element IDs (their leading bits already carry the length marker).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TITLE: u32 = 0x7BA9;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const DEFAULT_DURATION: u32 = 0x23_E383;
    pub const NAME: u32 = 0x536E;
    pub const LANGUAGE: u32 = 0x22_B59C;
    pub const CODEC_ID: u32 = 0x86;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

/// The track number of the one video track.
const TRACK: u8 = 1;

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

/// An EBML variable-length size in the fewest bytes (all-ones patterns are reserved for
/// "unknown size", hence `< 2^(7n) - 1`).
fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

/// An unsigned integer always 8 bytes wide, for positions that are written before their
/// final value is known (the element's size must not change when the value does).
fn uint_fixed(out: &mut Vec<u8>, id: u32, v: u64) {
    element(out, id, &v.to_be_bytes());
}

fn string(out: &mut Vec<u8>, id: u32, s: &str) {
    element(out, id, s.as_bytes());
}

fn float(out: &mut Vec<u8>, id: u32, v: f64) {
    element(out, id, &v.to_be_bytes());
}

fn master(out: &mut Vec<u8>, id: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    build(&mut body);
    element(out, id, &body);
}

/// Presentation time of frame `i` in milliseconds (the TimestampScale below).
fn frame_ms(i: usize, fps: u32) -> u64 {
    (i as u64 * 1000 + u64::from(fps) / 2) / u64::from(fps)
}

/// Builds the whole file from VP8 key frames.
pub(crate) fn mux(frames: &[Vec<u8>], width: u32, height: u32, fps: u32, title: &str) -> Vec<u8> {
    let mut out = Vec::new();
    master(&mut out, id::EBML, |b| {
        uint(b, id::EBML_VERSION, 1);
        uint(b, id::EBML_READ_VERSION, 1);
        uint(b, id::EBML_MAX_ID_LENGTH, 4);
        uint(b, id::EBML_MAX_SIZE_LENGTH, 8);
        string(b, id::DOC_TYPE, "webm");
        // Version 2 introduced SimpleBlock.
        uint(b, id::DOC_TYPE_VERSION, 2);
        uint(b, id::DOC_TYPE_READ_VERSION, 2);
    });

    let mut info = Vec::new();
    master(&mut info, id::INFO, |b| {
        uint(b, id::TIMESTAMP_SCALE, 1_000_000); // 1 ms
        float(b, id::DURATION, frame_ms(frames.len(), fps) as f64);
        string(b, id::MUXING_APP, "mediagate");
        string(b, id::WRITING_APP, "mediagate procedural video stand-in");
        string(b, id::TITLE, title);
    });

    let mut tracks = Vec::new();
    master(&mut tracks, id::TRACKS, |b| {
        master(b, id::TRACK_ENTRY, |t| {
            uint(t, id::TRACK_NUMBER, u64::from(TRACK));
            uint(t, id::TRACK_UID, 1);
            uint(t, id::TRACK_TYPE, 1); // video
            uint(t, id::FLAG_LACING, 0);
            uint(t, id::DEFAULT_DURATION, 1_000_000_000 / u64::from(fps));
            string(t, id::NAME, "Procedural stand-in");
            string(t, id::LANGUAGE, "und");
            string(t, id::CODEC_ID, "V_VP8");
            master(t, id::VIDEO, |v| {
                uint(v, id::PIXEL_WIDTH, u64::from(width));
                uint(v, id::PIXEL_HEIGHT, u64::from(height));
            });
        });
    });

    // Clusters, remembering where each starts relative to the cluster area and its time.
    let mut clusters = Vec::new();
    let mut cue_points = Vec::new();
    for (c, chunk) in frames.chunks(fps as usize).enumerate() {
        let first = c * fps as usize;
        let start_ms = frame_ms(first, fps);
        cue_points.push((start_ms, clusters.len() as u64));
        master(&mut clusters, id::CLUSTER, |b| {
            uint(b, id::TIMESTAMP, start_ms);
            for (k, frame) in chunk.iter().enumerate() {
                let rel = (frame_ms(first + k, fps) - start_ms) as i16;
                let mut block = Vec::with_capacity(frame.len() + 4);
                block.push(0x80 | TRACK); // track number as a 1-byte EBML size
                block.extend_from_slice(&rel.to_be_bytes());
                block.push(0x80); // key frame
                block.extend_from_slice(frame);
                element(b, id::SIMPLE_BLOCK, &block);
            }
        });
    }

    // Positions are relative to the start of the Segment's body. The SeekHead's own size is
    // fixed (8-byte positions), so measure it with zeros first.
    let seek_head = |positions: [u64; 4]| {
        let mut s = Vec::new();
        master(&mut s, id::SEEK_HEAD, |b| {
            for (target, pos) in [id::INFO, id::TRACKS, id::CLUSTER, id::CUES].into_iter().zip(positions) {
                master(b, id::SEEK, |e| {
                    let mut target_id = Vec::new();
                    put_id(&mut target_id, target);
                    element(e, id::SEEK_ID, &target_id);
                    uint_fixed(e, id::SEEK_POSITION, pos);
                });
            }
        });
        s
    };
    let head_len = seek_head([0; 4]).len() as u64;
    let info_at = head_len;
    let tracks_at = info_at + info.len() as u64;
    let clusters_at = tracks_at + tracks.len() as u64;
    let cues_at = clusters_at + clusters.len() as u64;
    let head = seek_head([info_at, tracks_at, clusters_at, cues_at]);

    let mut cues = Vec::new();
    master(&mut cues, id::CUES, |b| {
        for (time, offset) in &cue_points {
            master(b, id::CUE_POINT, |p| {
                uint(p, id::CUE_TIME, *time);
                master(p, id::CUE_TRACK_POSITIONS, |t| {
                    uint(t, id::CUE_TRACK, u64::from(TRACK));
                    uint(t, id::CUE_CLUSTER_POSITION, clusters_at + offset);
                });
            });
        }
    });

    let body_len = head.len() + info.len() + tracks.len() + clusters.len() + cues.len();
    put_id(&mut out, id::SEGMENT);
    put_size(&mut out, body_len as u64);
    out.reserve(body_len);
    for part in [&head, &info, &tracks, &clusters, &cues] {
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_shortest_valid_vint() {
        let enc = |v| {
            let mut o = Vec::new();
            put_size(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0x80]);
        assert_eq!(enc(126), [0xFE]);
        // 127 would be all ones in one byte (reserved for "unknown"), so it takes two.
        assert_eq!(enc(127), [0x40, 0x7F]);
        assert_eq!(enc(16_382), [0x7F, 0xFE]);
        assert_eq!(enc(16_383), [0x20, 0x3F, 0xFF]);
    }

    #[test]
    fn ids_are_written_without_leading_zero_bytes() {
        let mut o = Vec::new();
        put_id(&mut o, id::SIMPLE_BLOCK);
        put_id(&mut o, id::TIMESTAMP_SCALE);
        put_id(&mut o, id::SEGMENT);
        assert_eq!(o, [0xA3, 0x2A, 0xD7, 0xB1, 0x18, 0x53, 0x80, 0x67]);
    }
}
