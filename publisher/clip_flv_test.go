package publisher

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// flvOf writes c as an FLV file, as ffmpeg records an RTMP stream.
func flvOf(t testing.TB, c *Clip) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0})
	tag := func(typ byte, ms int64, body []byte) {
		b.Write([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body)),
			byte(ms >> 16), byte(ms >> 8), byte(ms), byte(ms >> 24), 0, 0, 0})
		b.Write(body)
		binary.Write(&b, binary.BigEndian, uint32(11+len(body)))
	}
	for _, tr := range c.Tracks {
		switch cd := tr.Codec.(type) {
		case *codecs.H264:
			rec, err := avc.CreateAVCDecConfRec([][]byte{cd.SPS}, [][]byte{cd.PPS}, true)
			if err != nil {
				t.Fatal(err)
			}
			var cfg bytes.Buffer
			if err := rec.Encode(&cfg); err != nil {
				t.Fatal(err)
			}
			tag(flvTagVideo, 0, append([]byte{0x17, 0, 0, 0, 0}, cfg.Bytes()...))
		case *codecs.MPEG4Audio:
			asc, err := cd.Config.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			tag(flvTagAudio, 0, append([]byte{0xaf, 0}, asc...))
		}
	}
	for _, s := range c.Samples {
		ms := s.DTS.Milliseconds()
		if s.NALUs == nil {
			tag(flvTagAudio, ms, append([]byte{0xaf, 1}, s.AU...))
			continue
		}
		avcc, err := h264.AVCC(s.NALUs).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cto := (s.PTS - s.DTS).Milliseconds()
		head := []byte{0x27, 1, byte(cto >> 16), byte(cto >> 8), byte(cto)}
		if s.Key {
			head[0] = 0x17
		}
		tag(flvTagVideo, ms, append(head, avcc...))
	}
	return b.Bytes()
}

// The demo clip, written as FLV, reads back with the same tracks and
// samples, timestamps rounded to FLV's milliseconds.
func TestLoadClipFLV(t *testing.T) {
	mp4 := clipLoadDemo(t)
	flv, err := LoadClip(flvOf(t, mp4))
	if err != nil {
		t.Fatal(err)
	}
	if len(flv.Tracks) != len(mp4.Tracks) || len(flv.Samples) != len(mp4.Samples) {
		t.Fatalf("FLV: %d tracks, %d samples; MP4: %d, %d", len(flv.Tracks), len(flv.Samples), len(mp4.Tracks), len(mp4.Samples))
	}
	near := func(a, b time.Duration) bool { return (a - b).Abs() <= time.Millisecond }
	for i, s := range flv.Samples {
		m := mp4.Samples[i]
		if !near(s.DTS, m.DTS) || !near(s.PTS, m.PTS) || s.Key != m.Key || !bytes.Equal(s.AU, m.AU) ||
			!slices.EqualFunc(s.NALUs, m.NALUs, bytes.Equal) {
			t.Fatalf("sample %d: FLV %v/%v key %v, MP4 %v/%v key %v", i, s.DTS, s.PTS, s.Key, m.DTS, m.PTS, m.Key)
		}
	}
	// The loop length comes from the last sample's duration, which FLV
	// does not carry: it may differ by up to a frame.
	if (flv.Duration - mp4.Duration).Abs() > 34*time.Millisecond {
		t.Errorf("duration %v, MP4 %v", flv.Duration, mp4.Duration)
	}
}

func TestLoadClipFLVBad(t *testing.T) {
	good := flvOf(t, clipLoadDemo(t))
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"header only", good[:9], "no video or audio"},
		{"bad version", append([]byte("FLV\x02"), good[4:]...), "bad header"},
		{"cut in a tag", good[:len(good)/2], "past the end"},
		{"VP6 video", flvWithTag(flvTagVideo, []byte{0x14, 0, 0, 0, 0, 1}), "only H.264"},
		{"MP3 audio", flvWithTag(flvTagAudio, []byte{0x2f, 1, 2}), "only AAC"},
		{"samples before a sequence header", flvWithTag(flvTagVideo, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}), "no sequence header"},
		{"unknown tag", flvWithTag(3, []byte{0}), "unknown tag type"},
	} {
		_, err := LoadClip(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// flvWithTag is an FLV file of one tag.
func flvWithTag(typ byte, body []byte) []byte {
	b := []byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0}
	b = append(b, typ, byte(len(body)>>16), byte(len(body)>>8), byte(len(body)), 0, 0, 0, 0, 0, 0, 0)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, uint32(11+len(body)))
}
