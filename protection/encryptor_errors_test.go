package protection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestEncryptRefuses: media that is not clear CMAF of the track.
func TestEncryptRefuses(t *testing.T) {
	v, a := demoClip(t)
	e := newEncryptor(t, v, testKey)
	chunk := v.chunks[1].Data
	enc, err := e.Encrypt(nil, chunk, testKey)
	if err != nil {
		t.Fatal(err)
	}
	mdatAt := int(binary.BigEndian.Uint32(chunk))
	badSlice := bytes.Clone(chunk)
	// The first NAL unit length of the first sample overruns the sample.
	binary.BigEndian.PutUint32(badSlice[mdatAt+8:], 1<<30)
	tests := []struct {
		name  string
		media []byte
		want  error
	}{
		{"truncated", chunk[:len(chunk)-1], ErrMalformed},
		{"header only", chunk[:4], ErrMalformed},
		{"mdat alone", chunk[mdatAt:], ErrMalformed},
		{"moof alone", chunk[:mdatAt], ErrMalformed},
		{"already encrypted", enc, ErrUnsupported},
		{"other track's chunk", a.chunks[0].Data, ErrSliceHeader},
		{"bad NAL unit length", badSlice, ErrSliceHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Encrypt([]byte("dst"), append(bytes.Clone(v.chunks[0].Data), tt.media...), testKey)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if string(got) != "dst" {
				t.Errorf("on error, dst holds %d bytes, want it as given", len(got))
			}
		})
	}
}

// TestEncryptWrongIV: the init segment's KID with another IV is refused.
func TestEncryptWrongIV(t *testing.T) {
	_, a := demoClip(t)
	e := newEncryptor(t, a, testKey)
	k := testKey
	k.IV[0]++
	if _, err := e.Encrypt(nil, a.chunks[0].Data, k); err == nil {
		t.Error("accepted")
	}
}

// TestNewRefuses: init segments this package does not protect.
func TestNewRefuses(t *testing.T) {
	v, _ := demoClip(t)
	if _, err := New(Config{Init: v.init}); err == nil {
		t.Error("zero KID accepted")
	}
	if _, err := New(Config{Init: v.init[:len(v.init)-3], Key: testKey}); err == nil {
		t.Error("truncated init segment accepted")
	}
	e := newEncryptor(t, v, testKey)
	if _, err := New(Config{Init: e.Init(), Key: testKey}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("protected init segment: %v, want ErrUnsupported", err)
	}
}

// FuzzEncrypt: whatever the media, Encrypt returns an error or output, and
// never panics; the corpus is the packager's chunks of every track.
func FuzzEncrypt(f *testing.F) {
	tracks := allTracks(f)
	encs := make([]*Encryptor, len(tracks))
	for i, p := range tracks {
		encs[i] = newEncryptor(f, p, testKey)
		for _, c := range p.chunks[:3] {
			f.Add(i, c.Data)
		}
	}
	f.Fuzz(func(t *testing.T, track int, media []byte) {
		if track < 0 || track >= len(encs) {
			return
		}
		_, _ = encs[track].Encrypt(nil, media, testKey2)
	})
}
