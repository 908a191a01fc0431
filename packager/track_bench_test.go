package packager

import (
	"testing"
	"time"
)

// BenchmarkPackager packages one second of a realistic live stream per
// iteration: 2.5 Mbit/s H.264-like video (30 fps, a keyframe every 30 frames,
// ~10 KB frames, ~60 KB keyframes, AUD and parameter sets as RTMP encoders
// send them) plus 128 kbit/s AAC at 48 kHz. Bytes/s is media bytes packaged
// per second of CPU.
func BenchmarkPackager(b *testing.B) {
	const fps = 30
	c := h264Codec(b)
	aud := []byte{0x09, 0xf0}
	sei := make([]byte, 40)
	sei[0] = 0x06
	video := make([][][]byte, fps)
	mediaBytes := 0
	for i := range video {
		size, hdr := 9300, byte(0x41)
		if i == 0 {
			size, hdr = 60000, 0x65
		}
		slice := make([]byte, size)
		slice[0] = hdr
		for j := 1; j < size; j++ {
			slice[j] = byte(j * 31)
		}
		au := [][]byte{aud, sei, slice}
		if i == 0 {
			au = [][]byte{aud, c.SPS, c.PPS, sei, slice}
		}
		for _, n := range au {
			mediaBytes += len(n)
		}
		video[i] = au
	}
	const aacFrames = 47 // 48000/1024 = 46.875 frames per second
	aac := make([]byte, 341)
	for j := range aac {
		aac[j] = byte(j)
	}
	mediaBytes += aacFrames * len(aac)

	var segs, bytesOut int
	onSegment := func(s *Segment) { segs++; bytesOut += len(s.Data) }
	vt, err := New(Config{Codec: c, OnSegment: onSegment, OnChunk: func(*Chunk) {}})
	if err != nil {
		b.Fatal(err)
	}
	at, err := New(Config{Codec: aacCodec(b, ascLC48Stereo), OnSegment: onSegment, OnChunk: func(*Chunk) {}})
	if err != nil {
		b.Fatal(err)
	}

	b.SetBytes(int64(mediaBytes))
	b.ReportAllocs()
	audioPTS := time.Duration(0)
	for i := 0; b.Loop(); i++ {
		base := time.Duration(i) * time.Second
		for f, au := range video {
			dts := base + time.Duration(f)*time.Second/fps
			if err := vt.WriteVideo(dts+time.Second/fps, dts, au); err != nil {
				b.Fatal(err)
			}
		}
		for range aacFrames {
			if err := at.WriteAudio(audioPTS.Round(time.Millisecond), aac); err != nil {
				b.Fatal(err)
			}
			audioPTS += 1024 * time.Second / 48000
		}
	}
	vt.Flush()
	at.Flush()
	if b.N > 2 && segs == 0 {
		b.Fatal("no segment produced")
	}
}
