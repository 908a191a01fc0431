package protection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestSubsampleMaps: small cases of the map rules: non-slice NAL units and
// slices too short to protect a block are clear, clear runs over 65535
// bytes are split, and a sample always has an entry.
func TestSubsampleMaps(t *testing.T) {
	v, _ := demoClip(t)
	e := newEncryptor(t, v, testKey)
	trex := parseTrex(t, v.init)
	samples := fullSamples(t, v.chunks[0].Data, trex)
	// The first sample: SEI and an IDR slice.
	idr := samples[0]
	nalu := func(b []byte) []byte { return binary.BigEndian.AppendUint32(nil, uint32(len(b))) }
	sei := append(nalu(make([]byte, 70000)), make([]byte, 70000)...)
	sei[4] = 6
	tests := []struct {
		name   string
		sample []byte
		check  func(t *testing.T, m []mp4.SubSamplePattern)
		err    error
	}{
		{"SEI only", sei, func(t *testing.T, m []mp4.SubSamplePattern) {
			if len(m) != 2 || m[0].BytesOfClearData != maxClearRun || int(m[1].BytesOfClearData) != len(sei)-maxClearRun ||
				m[0].BytesOfProtectedData+m[1].BytesOfProtectedData != 0 {
				t.Errorf("map %v", m)
			}
		}, nil},
		{"long SEI then IDR", append(bytes.Clone(sei), idr...), func(t *testing.T, m []mp4.SubSamplePattern) {
			if m[0].BytesOfClearData != maxClearRun || m[0].BytesOfProtectedData != 0 || m[len(m)-1].BytesOfProtectedData == 0 {
				t.Errorf("map %v", m)
			}
		}, nil},
		{"empty", nil, func(t *testing.T, m []mp4.SubSamplePattern) {
			if len(m) != 1 || m[0] != (mp4.SubSamplePattern{}) {
				t.Errorf("map %v", m)
			}
		}, nil},
		{"zero-length NAL unit", make([]byte, 4), nil, ErrSliceHeader},
		{"truncated length", []byte{0, 0}, nil, ErrSliceHeader},
		{"slice naming an unknown PPS", append(nalu([]byte{0x65, 0x88, 0x30, 0xff}), 0x65, 0x88, 0x30, 0xff), nil, ErrSliceHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := e.mapper.subsamples(nil, tt.sample)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for _, s := range m {
				sum += int(s.BytesOfClearData) + int(s.BytesOfProtectedData)
			}
			if sum != len(tt.sample) {
				t.Fatalf("map covers %d of %d bytes", sum, len(tt.sample))
			}
			tt.check(t, m)
		})
	}
}

// FuzzSubsamples: slices come from publishers. Whatever the sample, the
// mapper returns an error or a map that covers the sample exactly, and
// never panics; the corpus is real H.264 and H.265 samples.
func FuzzSubsamples(f *testing.F) {
	var mappers []*sliceMapper
	for _, p := range allTracks(f) {
		if !p.video {
			continue
		}
		e := newEncryptor(f, p, testKey)
		for _, s := range fullSamples(f, p.chunks[0].Data, parseTrex(f, p.init))[:3] {
			f.Add(len(mappers), s)
		}
		mappers = append(mappers, e.mapper)
	}
	f.Fuzz(func(t *testing.T, which int, sample []byte) {
		if which < 0 || which >= len(mappers) {
			return
		}
		m, err := mappers[which].subsamples(nil, sample)
		if err != nil {
			return
		}
		sum := 0
		for _, s := range m {
			sum += int(s.BytesOfClearData) + int(s.BytesOfProtectedData)
		}
		if sum != len(sample) {
			t.Fatalf("map %v covers %d of %d bytes", m, sum, len(sample))
		}
	})
}
