//! A minimal ISO-BMFF (MP4) writer for one H.264 track.
//!
//! Layout: `ftyp`, `moov`, `mdat` — the index before the media ("fast start"), so a browser can
//! start playing while downloading. All samples sit in one chunk, which ISO/IEC 14496-12
//! allows and keeps the sample tables to one entry each. Creation times are zero, not the wall
//! clock, so identical inputs give identical files.

use super::h264::AvcStream;

/// `[u32 size][fourcc][payload]`; sizes are patched in when the box closes.
struct BoxWriter {
    buf: Vec<u8>,
    open: Vec<usize>,
}

impl BoxWriter {
    fn new() -> Self {
        BoxWriter { buf: Vec::new(), open: Vec::new() }
    }

    fn start(&mut self, fourcc: &[u8; 4]) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(fourcc);
    }

    /// A "full box": version and 24-bit flags follow the header.
    fn start_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) {
        self.start(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
    }

    fn end(&mut self) {
        let at = self.open.pop().expect("end() matches a start()");
        let size = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    /// The identity transformation matrix of `mvhd`/`tkhd` (16.16 and 2.30 fixed point).
    fn matrix(&mut self) {
        for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
            self.u32(v);
        }
    }
}

/// Packed ISO-639-2 code "und" (undetermined), as `mdhd` stores languages.
const LANGUAGE_UND: u16 = ((b'u' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | (b'd' - 0x60) as u16;

/// Builds the whole file.
pub(crate) fn mux(stream: &AvcStream, width: u32, height: u32, fps: u32, title: &str) -> Vec<u8> {
    let mut ftyp = BoxWriter::new();
    ftyp.start(b"ftyp");
    ftyp.bytes(b"isom");
    ftyp.u32(0x200);
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        ftyp.bytes(brand);
    }
    ftyp.end();

    // The chunk offset depends on the size of `moov`, which does not depend on the offset's
    // value (a fixed 32-bit field): build once to measure, then for real.
    let probe = moov(stream, width, height, fps, title, 0);
    let mdat_payload: usize = stream.samples.iter().map(|s| s.data.len()).sum();
    let data_offset = ftyp.buf.len() + probe.len() + 8;
    let moov = moov(stream, width, height, fps, title, data_offset as u32);
    debug_assert_eq!(moov.len(), probe.len());

    let mut out = ftyp.buf;
    out.reserve(moov.len() + 8 + mdat_payload);
    out.extend_from_slice(&moov);
    out.extend_from_slice(&((mdat_payload + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for s in &stream.samples {
        out.extend_from_slice(&s.data);
    }
    out
}

fn moov(stream: &AvcStream, width: u32, height: u32, fps: u32, title: &str, chunk_offset: u32) -> Vec<u8> {
    let n = stream.samples.len() as u32;
    // Media clock: 1000 ticks per frame, so every integer frame rate is exact.
    let media_timescale = fps * 1000;
    let media_duration = n * 1000;
    // Movie clock in milliseconds (what players show).
    let movie_duration = (u64::from(n) * 1000 / u64::from(fps)) as u32;

    let mut b = BoxWriter::new();
    b.start(b"moov");

    b.start_full(b"mvhd", 0, 0);
    b.u32(0); // creation time
    b.u32(0); // modification time
    b.u32(1000); // timescale
    b.u32(movie_duration);
    b.u32(0x0001_0000); // rate 1.0
    b.u16(0x0100); // volume 1.0
    b.zeros(10);
    b.matrix();
    b.zeros(24); // pre_defined
    b.u32(2); // next track id
    b.end();

    b.start(b"trak");
    b.start_full(b"tkhd", 0, 0x3); // enabled, in movie
    b.u32(0);
    b.u32(0);
    b.u32(1); // track id
    b.u32(0);
    b.u32(movie_duration);
    b.zeros(8);
    b.u16(0); // layer
    b.u16(0); // alternate group
    b.u16(0); // volume (video)
    b.u16(0);
    b.matrix();
    b.u32(width << 16);
    b.u32(height << 16);
    b.end();

    b.start(b"mdia");
    b.start_full(b"mdhd", 0, 0);
    b.u32(0);
    b.u32(0);
    b.u32(media_timescale);
    b.u32(media_duration);
    b.u16(LANGUAGE_UND);
    b.u16(0);
    b.end();
    b.start_full(b"hdlr", 0, 0);
    b.u32(0);
    b.bytes(b"vide");
    b.zeros(12);
    b.bytes(b"VideoHandler\0");
    b.end();

    b.start(b"minf");
    b.start_full(b"vmhd", 0, 1);
    b.zeros(8); // graphics mode, opcolor
    b.end();
    b.start(b"dinf");
    b.start_full(b"dref", 0, 0);
    b.u32(1);
    b.start_full(b"url ", 0, 1); // media is in this file
    b.end();
    b.end();
    b.end();

    b.start(b"stbl");
    b.start_full(b"stsd", 0, 0);
    b.u32(1);
    avc1(&mut b, stream, width, height);
    b.end();
    b.start_full(b"stts", 0, 0);
    b.u32(1);
    b.u32(n);
    b.u32(1000);
    b.end();
    let sync: Vec<u32> = (1..=n).filter(|&i| stream.samples[i as usize - 1].sync).collect();
    b.start_full(b"stss", 0, 0);
    b.u32(sync.len() as u32);
    for i in sync {
        b.u32(i);
    }
    b.end();
    b.start_full(b"stsc", 0, 0);
    b.u32(1);
    b.u32(1); // first chunk
    b.u32(n); // samples per chunk
    b.u32(1); // sample description index
    b.end();
    b.start_full(b"stsz", 0, 0);
    b.u32(0); // sizes vary
    b.u32(n);
    for s in &stream.samples {
        b.u32(s.data.len() as u32);
    }
    b.end();
    b.start_full(b"stco", 0, 0);
    b.u32(1);
    b.u32(chunk_offset);
    b.end();
    b.end(); // stbl
    b.end(); // minf
    b.end(); // mdia
    b.end(); // trak

    // QuickTime-style text atoms, which ffmpeg/VLC/QuickTime show as title and comment.
    b.start(b"udta");
    for (key, text) in [(b"\xA9nam", title), (b"\xA9cmt", title)] {
        b.start(key);
        b.u16(text.len() as u16);
        b.u16(LANGUAGE_UND);
        b.bytes(text.as_bytes());
        b.end();
    }
    b.end();

    b.end(); // moov
    b.buf
}

/// The AVC visual sample entry with its decoder configuration (ISO/IEC 14496-15).
fn avc1(b: &mut BoxWriter, stream: &AvcStream, width: u32, height: u32) {
    b.start(b"avc1");
    b.zeros(6);
    b.u16(1); // data reference index
    b.zeros(16); // pre_defined, reserved
    b.u16(width as u16);
    b.u16(height as u16);
    b.u32(0x0048_0000); // 72 dpi
    b.u32(0x0048_0000);
    b.u32(0);
    b.u16(1); // frames per sample
    let mut name = [0u8; 32];
    let label = b"mediagate stand-in";
    name[0] = label.len() as u8;
    name[1..=label.len()].copy_from_slice(label);
    b.bytes(&name);
    b.u16(0x0018); // depth: colour, no alpha
    b.u16(0xFFFF); // pre_defined = -1

    b.start(b"avcC");
    b.u8(1); // configuration version
    b.u8(stream.sps[1]); // profile
    b.u8(stream.sps[2]); // profile compatibility
    b.u8(stream.sps[3]); // level
    b.u8(0xFC | 3); // 4-byte NAL lengths
    b.u8(0xE0 | 1); // one SPS
    b.u16(stream.sps.len() as u16);
    b.bytes(&stream.sps);
    b.u8(1); // one PPS
    b.u16(stream.pps.len() as u16);
    b.bytes(&stream.pps);
    if matches!(stream.sps[1], 100 | 110 | 122 | 144) {
        // High profiles carry chroma format and bit depths: 4:2:0, 8-bit.
        b.u8(0xFC | 1);
        b.u8(0xF8);
        b.u8(0xF8);
        b.u8(0);
    }
    b.end();
    b.end();
}
