package protection

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/golivestream/live/internal/mp4test"
)

// widevineKey is testKey with a Widevine pssh, as a CPIX response gives it.
func widevineKey(tb testing.TB) Key {
	tb.Helper()
	p, err := mp4.NewPsshBox(string(SystemWidevine), []string{testKey.KID.String()}, []byte{0x12, 0x10, 0x0f, 0x1e})
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		tb.Fatal(err)
	}
	k := testKey
	k.Systems = []System{{ID: SystemWidevine, PSSH: b.Bytes()}}
	return k
}

func newEncryptor(tb testing.TB, p *packaged, k Key) *Encryptor {
	tb.Helper()
	e, err := New(Config{Init: p.init, Key: k, Track: p.name})
	if err != nil {
		tb.Fatalf("%s: %v", p.name, err)
	}
	return e
}

// TestInitGolden: the protected init segments, as mp4ff dumps them: encv
// or enca with sinf (frma, schm cbcs, tenc with the KID, pattern and
// constant IV), the common pssh, and a Widevine pssh when the key has one.
func TestInitGolden(t *testing.T) {
	for _, p := range allTracks(t) {
		t.Run(p.name, func(t *testing.T) {
			k := testKey
			if p.name == "h264_high" {
				k = widevineKey(t)
			}
			e := newEncryptor(t, p, k)
			golden(t, p.name+"_init.dump", mp4test.BoxDump(t, e.Init()))
			if e.DefaultKID() != testKey.KID {
				t.Errorf("DefaultKID %s", e.DefaultKID())
			}
		})
	}
}

// TestRoundTrip: every chunk of real packager output, encrypted and then
// decrypted with mp4ff, is the clear chunk byte for byte; encrypting a
// whole segment gives the encrypted chunks concatenated.
func TestRoundTrip(t *testing.T) {
	for _, p := range allTracks(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEncryptor(t, p, testKey)
			var segEnc []byte
			n := 0
			for _, c := range p.chunks {
				enc, err := e.Encrypt(nil, c.Data, testKey)
				if err != nil {
					t.Fatalf("segment %d chunk %d: %v", c.SegmentNumber, c.Index, err)
				}
				if bytes.Equal(enc[len(enc)-len(c.Data)/2:], c.Data[len(c.Data)-len(c.Data)/2:]) {
					t.Errorf("segment %d chunk %d: the end of the mdat is unchanged", c.SegmentNumber, c.Index)
				}
				dec := decryptMedia(t, e.Init(), enc, testKey, p.name)
				if !bytes.Equal(dec, c.Data) {
					t.Fatalf("segment %d chunk %d: decrypted chunk differs from the clear one (%d vs %d bytes)",
						c.SegmentNumber, c.Index, len(dec), len(c.Data))
				}
				if c.Index == 0 {
					segEnc = nil
				}
				segEnc = append(segEnc, enc...)
				if next := n + 1; next == len(p.chunks) || p.chunks[next].Index == 0 {
					seg := p.segs[c.SegmentNumber]
					whole, err := e.Encrypt(nil, seg.Data, testKey)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(whole, segEnc) {
						t.Errorf("segment %d: encrypting it whole differs from its chunks", seg.Number)
					}
				}
				n++
			}
		})
	}
}

// TestVideoHeadersClear: in every encrypted video sample, the NAL unit
// lengths, NAL unit headers and slice headers (found here with mp4ff's
// slice header parsers on the clear sample) and every non-slice NAL unit
// are unchanged; the senc maps exactly those bytes as clear; inside each
// protected range one block in ten is encrypted, from its first byte.
func TestVideoHeadersClear(t *testing.T) {
	for _, p := range allTracks(t) {
		if !p.video {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			e := newEncryptor(t, p, testKey)
			trex := parseTrex(t, p.init)
			var slices, protected int
			for _, c := range p.chunks {
				enc, err := e.Encrypt(nil, c.Data, testKey)
				if err != nil {
					t.Fatal(err)
				}
				clear := fullSamples(t, c.Data, trex)
				encFrag := fragments(t, enc)[0]
				encSamples, err := encFrag.GetFullSamples(trex)
				if err != nil {
					t.Fatal(err)
				}
				if err := encFrag.Moof.Traf.ParseReadSenc(0, encFrag.Moof.StartPos); err != nil {
					t.Fatal(err)
				}
				senc := encFrag.Moof.Traf.Senc
				if len(encSamples) != len(clear) || int(senc.SampleCount) != len(clear) {
					t.Fatalf("%d samples, %d encrypted, senc %d", len(clear), len(encSamples), senc.SampleCount)
				}
				for i, cs := range clear {
					wantMap := expectedMap(t, e, p.hevc, cs)
					if fmt.Sprint(senc.SubSamples[i]) != fmt.Sprint(wantMap) {
						t.Fatalf("sample %d: senc %v, want %v", i, senc.SubSamples[i], wantMap)
					}
					es := encSamples[i].Data
					pos := 0
					for _, ss := range senc.SubSamples[i] {
						n := int(ss.BytesOfClearData)
						if !bytes.Equal(es[pos:pos+n], cs[pos:pos+n]) {
							t.Fatalf("sample %d: clear bytes [%d,%d) changed", i, pos, pos+n)
						}
						pos += n
						m := int(ss.BytesOfProtectedData)
						for b := 0; b+16 <= m; b += 16 {
							same := bytes.Equal(es[pos+b:pos+b+16], cs[pos+b:pos+b+16])
							if (b/16)%10 == 0 && same {
								t.Fatalf("sample %d: block at %d of a protected range not encrypted", i, b)
							}
							if (b/16)%10 != 0 && !same {
								t.Fatalf("sample %d: skip block at %d of a protected range changed", i, b)
							}
						}
						if tail := m % 16; tail > 0 && !bytes.Equal(es[pos+m-tail:pos+m], cs[pos+m-tail:pos+m]) {
							t.Fatalf("sample %d: partial block at the end of a protected range changed", i)
						}
						pos += m
						if m > 0 {
							protected++
						}
					}
					if pos != len(cs) {
						t.Fatalf("sample %d: senc covers %d of %d bytes", i, pos, len(cs))
					}
					slices += countSlices(cs, p.hevc)
				}
			}
			if protected == 0 || protected > slices {
				t.Errorf("%d protected ranges for %d slices", protected, slices)
			}
			t.Logf("%d slices, %d protected ranges", slices, protected)
		})
	}
}

// expectedMap computes the subsample map of a clear sample independently
// of sliceMapper: mp4ff's GetAVCProtectRanges/GetHEVCProtectRanges for
// 'cbcs' (clear: length, NAL unit header, slice header), with ranges under
// one block folded into the clear bytes as sliceMapper does.
func expectedMap(tb testing.TB, e *Encryptor, isHEVC bool, sample []byte) []mp4.SubSamplePattern {
	tb.Helper()
	var (
		rs  []mp4.SubSamplePattern
		err error
	)
	if isHEVC {
		rs, err = mp4.GetHEVCProtectRanges(e.mapper.hevcSPS, e.mapper.hevcPPS, sample, "cbcs")
	} else {
		rs, err = mp4.GetAVCProtectRanges(e.mapper.avcSPS, e.mapper.avcPPS, sample, "cbcs")
	}
	if err != nil {
		tb.Fatal(err)
	}
	var out []mp4.SubSamplePattern
	clear := 0
	for _, r := range rs {
		clear += int(r.BytesOfClearData)
		if r.BytesOfProtectedData < minProtected {
			clear += int(r.BytesOfProtectedData)
			continue
		}
		out = mp4.AppendProtectRange(out, uint32(clear), r.BytesOfProtectedData)
		clear = 0
	}
	if clear > 0 || len(out) == 0 {
		out = mp4.AppendProtectRange(out, uint32(clear), 0)
	}
	return out
}

// countSlices counts the coded slice NAL units of a sample.
func countSlices(sample []byte, isHEVC bool) int {
	n := 0
	for pos := 0; pos+4 <= len(sample); {
		l := int(binary.BigEndian.Uint32(sample[pos:]))
		nalu := sample[pos+4 : pos+4+l]
		if isHEVC {
			if t := hevc.GetNaluType(nalu[0]); t <= 9 || (t >= 16 && t <= 21) {
				n++
			}
		} else if t := avc.GetNaluType(nalu[0]); t == avc.NALU_IDR || t == avc.NALU_NON_IDR {
			n++
		}
		pos += 4 + l
	}
	return n
}

func parseTrex(tb testing.TB, init []byte) *mp4.TrexBox {
	tb.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil {
		tb.Fatal(err)
	}
	return f.Init.Moov.Mvex.Trex
}

func fragments(tb testing.TB, media []byte) []*mp4.Fragment {
	tb.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(media))
	if err != nil {
		tb.Fatal(err)
	}
	var out []*mp4.Fragment
	for _, s := range f.Segments {
		out = append(out, s.Fragments...)
	}
	return out
}

func fullSamples(tb testing.TB, media []byte, trex *mp4.TrexBox) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, f := range fragments(tb, media) {
		fs, err := f.GetFullSamples(trex)
		if err != nil {
			tb.Fatal(err)
		}
		for _, s := range fs {
			out = append(out, s.Data)
		}
	}
	return out
}

// TestAudioFullSample: every whole block of an AAC frame is encrypted, the
// partial block at its end is clear, and the fragment has no senc, saiz or
// saio.
func TestAudioFullSample(t *testing.T) {
	_, a := demoClip(t)
	e := newEncryptor(t, a, testKey)
	trex := parseTrex(t, a.init)
	c := a.chunks[0]
	enc, err := e.Encrypt(nil, c.Data, testKey)
	if err != nil {
		t.Fatal(err)
	}
	f := fragments(t, enc)[0]
	if ok, _ := f.Moof.Traf.ContainsSencBox(); ok || f.Moof.Traf.Saiz != nil || f.Moof.Traf.Saio != nil {
		t.Error("audio fragment has sample auxiliary information")
	}
	clear := fullSamples(t, c.Data, trex)
	encS := fullSamples(t, enc, trex)
	for i, cs := range clear {
		es := encS[i]
		whole := len(cs) / 16 * 16
		for b := 0; b < whole; b += 16 {
			if bytes.Equal(es[b:b+16], cs[b:b+16]) {
				t.Fatalf("frame %d: block at %d not encrypted", i, b)
			}
		}
		if !bytes.Equal(es[whole:], cs[whole:]) {
			t.Fatalf("frame %d: trailing %d bytes changed", i, len(cs)-whole)
		}
	}
}

// TestDeterministic: two Encryptors given the same init segment and key,
// run at once from several goroutines, produce the same bytes, and so do
// repeated calls.
func TestDeterministic(t *testing.T) {
	for _, p := range allTracks(t) {
		t.Run(p.name, func(t *testing.T) {
			e1 := newEncryptor(t, p, testKey)
			e2 := newEncryptor(t, p, testKey)
			if !bytes.Equal(e1.Init(), e2.Init()) {
				t.Fatal("init segments differ")
			}
			want := make([][]byte, len(p.chunks))
			for i, c := range p.chunks {
				var err error
				if want[i], err = e1.Encrypt(nil, c.Data, testKey2); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := e1
					if g%2 == 1 {
						e = e2
					}
					buf := make([]byte, 0, 64)
					for i, c := range p.chunks {
						got, err := e.Encrypt(buf[:0], c.Data, testKey2)
						if err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(got, want[i]) {
							errs <- fmt.Errorf("goroutine %d: chunk %d differs", g, i)
							return
						}
						buf = got
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestEncryptAppends: Encrypt appends to dst and leaves what dst held.
func TestEncryptAppends(t *testing.T) {
	_, a := demoClip(t)
	e := newEncryptor(t, a, testKey)
	want, err := e.Encrypt(nil, a.chunks[0].Data, testKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Encrypt([]byte("prefix"), a.chunks[0].Data, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
		t.Error("Encrypt did not append")
	}
}
