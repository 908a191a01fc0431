// Package mp4test reads back fragmented MP4 for tests, with mp4ff: a
// dump of every box for golden files, and cbcs decryption of encrypted
// media.
package mp4test

import (
	"bytes"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// BoxDump returns mp4ff's dump of every box of data, with every detail.
func BoxDump(tb testing.TB, data []byte) []byte {
	tb.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	if err := f.Info(&b, "all:1", "", "  "); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// Decrypt decrypts media (moof+mdat pairs) of the track whose encrypted
// init segment is encInit with mp4ff, every fragment with key, of key ID
// kid and constant IV iv, and returns it re-encoded. The init segment's
// tenc is given kid and iv first: a later key period's fragments name
// their key in a seig sample group, which mp4ff does not read.
func Decrypt(tb testing.TB, encInit, media []byte, kid [16]byte, key, iv []byte) []byte {
	tb.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(encInit))
	if err != nil {
		tb.Fatal(err)
	}
	di, err := mp4.DecryptInit(f.Init)
	if err != nil {
		tb.Fatal(err)
	}
	tenc := di.TrackInfos[0].Sinf.Schi.Tenc
	tenc.DefaultKID = mp4.UUID(kid[:])
	tenc.DefaultConstantIV = iv
	mf, err := mp4.DecodeFile(bytes.NewReader(media))
	if err != nil {
		tb.Fatalf("decode encrypted media: %v", err)
	}
	var out bytes.Buffer
	for _, seg := range mf.Segments {
		for _, frag := range seg.Fragments {
			if err := mp4.DecryptFragment(frag, di, key); err != nil {
				tb.Fatalf("decrypt: %v", err)
			}
			if err := frag.Encode(&out); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return out.Bytes()
}

// MediaKey returns the key ID and constant IV that the first fragment of
// media (of the track whose encrypted init segment is encInit) is
// encrypted with, as a player finds them: the fragment's seig sample
// group (ISO/IEC 23001-7 6: a key period after the first), else the init
// segment's tenc.
func MediaKey(tb testing.TB, encInit, media []byte) (kid [16]byte, iv []byte) {
	tb.Helper()
	mf, err := mp4.DecodeFile(bytes.NewReader(media))
	if err != nil {
		tb.Fatalf("decode encrypted media: %v", err)
	}
	if len(mf.Segments) == 0 || len(mf.Segments[0].Fragments) == 0 {
		tb.Fatal("no fragment in the media")
	}
	if sgpd := mf.Segments[0].Fragments[0].Moof.Traf.Sgpd; sgpd != nil && sgpd.GroupingType == "seig" {
		for _, e := range sgpd.SampleGroupEntries {
			if seig, ok := e.(*mp4.SeigSampleGroupEntry); ok {
				copy(kid[:], seig.KID)
				return kid, seig.ConstantIV
			}
		}
	}
	f, err := mp4.DecodeFile(bytes.NewReader(encInit))
	if err != nil {
		tb.Fatal(err)
	}
	di, err := mp4.DecryptInit(f.Init)
	if err != nil {
		tb.Fatal(err)
	}
	tenc := di.TrackInfos[0].Sinf.Schi.Tenc
	copy(kid[:], tenc.DefaultKID)
	return kid, tenc.DefaultConstantIV
}

// ClearInit returns the clear init segment of the encrypted one encInit,
// as a player that decrypts makes it: the protection boxes removed, the
// sample entries given their original format back.
func ClearInit(tb testing.TB, encInit []byte) []byte {
	tb.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(encInit))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := mp4.DecryptInit(f.Init); err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	if err := f.Init.Encode(&out); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}
