package protection

import (
	"bytes"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestRotation: segment 0 is in the first key period (the init segment's
// default KID), segments from 1 on in a second one. The second period's
// fragments carry a seig sample group with the new KID and IV and the
// pssh boxes of the new key in the moof; they decrypt with the new key only.
// The first chunk of each period is kept as a golden box dump.
func TestRotation(t *testing.T) {
	for _, p := range allTracks(t) {
		t.Run(p.name, func(t *testing.T) {
			e := newEncryptor(t, p, testKey)
			for _, c := range p.chunks {
				key := testKey
				if c.SegmentNumber >= 1 {
					key = testKey2
				}
				enc, err := e.Encrypt(nil, c.Data, key)
				if err != nil {
					t.Fatal(err)
				}
				f := fragments(t, enc)[0]
				traf, moof := f.Moof.Traf, f.Moof
				if c.SegmentNumber == 0 {
					if traf.Sgpd != nil || traf.Sbgp != nil || len(moof.Psshs) > 0 {
						t.Fatalf("segment 0: signalling of a key change")
					}
				} else {
					checkSeig(t, traf, moof, testKey2, p.name, p.video)
					if other := decryptMediaNoFail(enc, e.Init(), testKey, p.name); bytes.Equal(other, c.Data) {
						t.Fatal("segment 1 decrypts with the first key")
					}
				}
				if dec := decryptMedia(t, e.Init(), enc, key, p.name); !bytes.Equal(dec, c.Data) {
					t.Fatalf("segment %d chunk %d: decrypted chunk differs", c.SegmentNumber, c.Index)
				}
				if c.Index == 0 && c.SegmentNumber <= 1 {
					golden(t, filepath.Join("rotation", p.name+"_seg"+string(rune('0'+c.SegmentNumber))+"_chunk0.dump"),
						[]byte(moofDump(t, enc)))
				}
			}
		})
	}
}

// checkSeig checks the in-band signalling of key k in a fragment.
func checkSeig(tb testing.TB, traf *mp4.TrafBox, moof *mp4.MoofBox, k Key, track string, video bool) {
	tb.Helper()
	if traf.Sbgp == nil || traf.Sgpd == nil || traf.Sbgp.GroupingType != "seig" || traf.Sgpd.GroupingType != "seig" {
		tb.Fatal("no seig sample group")
	}
	if len(traf.Sbgp.SampleCounts) != 1 || traf.Sbgp.SampleCounts[0] != traf.Trun.SampleCount() ||
		traf.Sbgp.GroupDescriptionIndices[0] != sbgpFragmentLocal {
		tb.Fatalf("sbgp %v %v", traf.Sbgp.SampleCounts, traf.Sbgp.GroupDescriptionIndices)
	}
	seig, ok := traf.Sgpd.SampleGroupEntries[0].(*mp4.SeigSampleGroupEntry)
	if !ok {
		tb.Fatalf("sgpd entry %T", traf.Sgpd.SampleGroupEntries[0])
	}
	iv := k.TrackIV(track)
	wantCrypt, wantSkip := byte(0), byte(0)
	if video {
		wantCrypt, wantSkip = videoCryptBlocks, videoSkipBlocks
	}
	if !bytes.Equal(seig.KID, k.KID[:]) || !bytes.Equal(seig.ConstantIV, iv[:]) || seig.IsProtected != 1 ||
		seig.PerSampleIVSize != 0 || seig.CryptByteBlock != wantCrypt || seig.SkipByteBlock != wantSkip {
		tb.Fatalf("seig %+v", seig)
	}
	if len(moof.Psshs) == 0 || !bytes.Equal(moof.Psshs[0].SystemID, SystemCommon.uuid()) ||
		len(moof.Psshs[0].KIDs) != 1 || !bytes.Equal(moof.Psshs[0].KIDs[0], k.KID[:]) {
		tb.Fatal("no common pssh with the new KID in the moof")
	}
}

// decryptMediaNoFail decrypts like decryptMedia, returning nil on any
// error or panic.
func decryptMediaNoFail(media, encInit []byte, key Key, track string) (out []byte) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	f, err := mp4.DecodeFile(bytes.NewReader(encInit))
	if err != nil {
		return nil
	}
	di, err := mp4.DecryptInit(f.Init)
	if err != nil {
		return nil
	}
	iv := key.TrackIV(track)
	di.TrackInfos[0].Sinf.Schi.Tenc.DefaultConstantIV = iv[:]
	mf, err := mp4.DecodeFile(bytes.NewReader(media))
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	for _, s := range mf.Segments {
		for _, fr := range s.Fragments {
			if mp4.DecryptFragment(fr, di, key.Value[:]) != nil || fr.Encode(&b) != nil {
				return nil
			}
		}
	}
	return b.Bytes()
}

// moofDump dumps the moofs of media (the mdat payload is left out).
func moofDump(tb testing.TB, media []byte) string {
	tb.Helper()
	var b bytes.Buffer
	for _, f := range fragments(tb, media) {
		if err := f.Moof.Info(&b, "all:1", "", "  "); err != nil {
			tb.Fatal(err)
		}
		b.WriteString("[mdat] size=" + strconv.FormatUint(f.Mdat.Size(), 10) + "\n")
	}
	return b.String()
}
