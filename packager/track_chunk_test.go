package packager

import (
	"bytes"
	"testing"
	"time"

	"github.com/golivestream/live/internal/mediatime"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// TestMoofMatchesMp4ff checks the hand-written moof encoder against mp4ff's
// encoding of the same fragment.
func TestMoofMatchesMp4ff(t *testing.T) {
	tests := []struct {
		name  string
		codec codecs.Codec
		write func(*Track)
	}{
		{"video", h264Codec(t), func(tr *Track) {
			c := h264Codec(t)
			writeFrames(t, tr, videoStream{frames: 40, frameDur: time.Second / 30, gop: 30, size: 20, bframes: true}.build(c.SPS, c.PPS))
		}},
		{"audio", aacCodec(t, ascLC48Stereo), func(tr *Track) {
			writeAudio(t, tr, audioStream(100, 48000, 5*time.Hour*24*30, nil)) // tfdt above 2^32
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, col := newTrack(t, Config{Codec: tt.codec})
			tt.write(tr)
			tr.Flush()
			_, trex := parseInit(t, tr.Init())
			for _, ch := range col.chunks {
				pcs := parseMedia(t, ch.Data, trex)
				if len(pcs) != 1 {
					t.Fatalf("chunk parses as %d fragments", len(pcs))
				}
				pc := pcs[0]
				frag, err := mp4.CreateFragment(pc.seq, trackID)
				if err != nil {
					t.Fatal(err)
				}
				var data []byte
				for _, s := range pc.samples {
					frag.AddFullSample(mp4.FullSample{
						Sample: mp4.Sample{
							Flags: map[bool]uint32{true: mp4.SyncSampleFlags, false: mp4.SetNonSyncSampleFlags(0)}[s.sync],
							Dur:   s.dur, Size: uint32(len(s.data)), CompositionTimeOffset: int32(s.pts - s.dts),
						},
						DecodeTime: uint64(s.dts),
						Data:       s.data,
					})
					data = append(data, s.data...)
				}
				frag.Moof.Traf.Tfdt.Version = 1
				if !tr.info.Video {
					frag.Moof.Traf.Trun.Flags &^= mp4.TrunSampleCompositionTimeOffsetPresentFlag
				}
				sw := bits.NewFixedSliceWriter(int(frag.Size()))
				if err := frag.EncodeSW(sw); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(sw.Bytes(), ch.Data) {
					t.Fatalf("chunk %d of segment %d differs from mp4ff encoding", ch.Index, ch.SegmentNumber)
				}
			}
		})
	}
}

func TestChunkDurations(t *testing.T) {
	const fd = time.Second / 30
	tests := []struct {
		name       string
		chunkDur   time.Duration
		segDur     time.Duration
		wantChunks int // per full segment
	}{
		{"default", 0, 0, 4},
		{"100ms", 100 * time.Millisecond, 0, 10},
		{"one frame", fd, 0, 30},
		{"below one frame", time.Millisecond, 0, 30},
		{"whole segment", time.Second, 0, 1},
		{"longer than segment", 5 * time.Second, 0, 1},
		{"500ms in 2s", 500 * time.Millisecond, 2 * time.Second, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h264Codec(t)
			frames := videoStream{frames: 180, frameDur: fd, gop: 30, size: 30}.build(c.SPS, c.PPS)
			tr, col := newTrack(t, Config{Codec: c, ChunkDuration: tt.chunkDur, SegmentDuration: tt.segDur})
			writeFrames(t, tr, frames)
			tr.Flush()
			checkSegments(t, tr, col.segs, 0, true)
			target := tt.chunkDur
			if target == 0 {
				target = defaultChunkDuration
			}
			for _, s := range col.segs {
				if len(s.Chunks) != tt.wantChunks {
					t.Errorf("segment %d: %d chunks, want %d", s.Number, len(s.Chunks), tt.wantChunks)
				}
				checkChunkDurations(t, s, mediatime.Ticks(target, VideoTimescale), 3001)
			}
		})
	}
}

// TestOutputImmutable checks that segments and chunks handed out are never
// modified afterwards, and that OnChunk may be nil.
func TestOutputImmutable(t *testing.T) {
	c := h264Codec(t)
	// Frame sizes grow so that segment buffers have to grow past their
	// estimate.
	frames := videoStream{frames: 300, frameDur: time.Second / 30, gop: 30, size: 10}.build(c.SPS, c.PPS)
	for i := range frames {
		last := len(frames[i].au) - 1
		frames[i].au[last] = append(frames[i].au[last], make([]byte, i*40)...)
	}
	for _, withChunks := range []bool{true, false} {
		var (
			segs   []*Segment
			copies [][]byte
			chunks []*Chunk
			chunkC [][]byte
			segC   [][]byte // each chunk's segment so far
		)
		cfg := Config{Codec: c, OnSegment: func(s *Segment) {
			segs = append(segs, s)
			copies = append(copies, bytes.Clone(s.Data))
		}}
		if withChunks {
			cfg.OnChunk = func(ch *Chunk) {
				chunks = append(chunks, ch)
				chunkC = append(chunkC, bytes.Clone(ch.Data))
				segC = append(segC, bytes.Clone(ch.Segment))
			}
		}
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		writeFrames(t, tr, frames)
		tr.Flush()
		for i, s := range segs {
			if !bytes.Equal(s.Data, copies[i]) {
				t.Errorf("segment %d modified after OnSegment", i)
			}
		}
		for i, ch := range chunks {
			if !bytes.Equal(ch.Data, chunkC[i]) {
				t.Errorf("chunk %d modified after OnChunk", i)
			}
			// The segment so far: unchanged, ending with the chunk, and the
			// start of its segment.
			seg := segs[ch.SegmentNumber].Data
			if !bytes.Equal(ch.Segment, segC[i]) || !bytes.HasSuffix(ch.Segment, ch.Data) || !bytes.HasPrefix(seg, ch.Segment) {
				t.Errorf("chunk %d: its segment so far (%d bytes) is not the start of segment %d up to it", i, len(ch.Segment), ch.SegmentNumber)
			}
		}
		if withChunks && len(chunks) != 40 {
			t.Errorf("%d chunks, want 40", len(chunks))
		}
		checkSegments(t, tr, segs, 0, true)
	}
}
