// Command delay measures how long the ladder's ffmpeg holds each frame:
// from the moment a source frame is written to ffmpeg's stdin to the
// moment the same frame of a rung is read back from its stdout and
// parsed, with the MPEG-TS reader and writer the transcoder uses, the
// source fed in real time. It alternates command-line variants round by
// round, so that they share the machine's state: ours and, to compare,
// the same without each option that keeps frames from waiting.
//
//	ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 12 -c:v libx264 \
//	  -preset veryfast -tune zerolatency -g 30 -b:v 2500k -f mpegts /tmp/src.ts
//	go run ./bench/transcode/delay -src /tmp/src.ts [-rounds 3] [-seconds 10]
//
// The delays include ffmpeg's first second, which it spends probing its
// input (-analyzeduration): the median is the steady state, the p90 is
// not.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"

	"github.com/golivestream/live/transcode"
)

// frame is one access unit of the source.
type frame struct {
	pts, dts int64
	au       [][]byte
}

// variant is a change to transcode.Args.
type variant struct {
	name string
	edit func([]string) []string
}

func main() {
	src := flag.String("src", "", "source: MPEG-TS with one H.264 track (required)")
	rounds := flag.Int("rounds", 3, "rounds, each running every variant once")
	seconds := flag.Int("seconds", 10, "seconds of source fed per run (at most the source's length)")
	preset := flag.String("preset", "veryfast", "x264 preset")
	ladder := flag.String("ladder", "720p:2500k,480p:1000k,240p:400k", "the ladder")
	only := flag.String("variants", "", "comma-separated variant names to run (default: all)")
	flag.Parse()
	if *src == "" {
		flag.Usage()
		os.Exit(2)
	}
	rungs, err := transcode.ParseLadder(*ladder)
	if err != nil {
		fail(err)
	}
	frames, err := readSource(*src)
	if err != nil {
		fail(err)
	}
	var variants []variant
	for _, v := range allVariants() {
		if *only == "" || slices.Contains(strings.Split(*only, ","), v.name) {
			variants = append(variants, v)
		}
	}
	delays := map[string][]time.Duration{}
	for r := range *rounds {
		for _, v := range variants {
			args := v.edit(transcode.Args(*preset, time.Second, rungs, time.Duration(frames[0].pts)*time.Second/90000))
			d, err := run(args, frames, time.Duration(*seconds)*time.Second)
			if err != nil {
				fail(fmt.Errorf("round %d, %s: %w", r+1, v.name, err))
			}
			fmt.Printf("round %d %-28s frames %4d  median %6.1f ms  p90 %6.1f ms\n", r+1, v.name, len(d), ms(quantile(d, 0.5)), ms(quantile(d, 0.9)))
			delays[v.name] = append(delays[v.name], d...)
		}
	}
	fmt.Println()
	for _, v := range variants {
		d := delays[v.name]
		fmt.Printf("all   %-28s frames %4d  median %6.1f ms  p90 %6.1f ms\n", v.name, len(d), ms(quantile(d, 0.5)), ms(quantile(d, 0.9)))
	}
}

// allVariants are the command line of transcode.Args and, to compare
// with, the one before each of its options that keep frames from
// waiting.
func allVariants() []variant {
	without := func(opt string) func([]string) []string {
		return func(a []string) []string {
			i := slices.Index(a, opt)
			return slices.Delete(slices.Clone(a), i, i+2)
		}
	}
	both := func(f, g func([]string) []string) func([]string) []string {
		return func(a []string) []string { return g(f(a)) }
	}
	return []variant{
		{"ours", func(a []string) []string { return a }},
		{"frame-threaded-decoder", without("-thread_type")},
		{"no-video-pes-length", without("-omit_video_pes_length")},
		{"neither", both(without("-thread_type"), without("-omit_video_pes_length"))},
	}
}

// readSource reads every H.264 access unit of the MPEG-TS file at path.
func readSource(path string) ([]frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &mpegts.Reader{R: bufio.NewReader(f)}
	if err := r.Initialize(); err != nil {
		return nil, err
	}
	var frames []frame
	for _, t := range r.Tracks() {
		if _, ok := t.Codec.(*mpegts.CodecH264); ok {
			r.OnDataH264(t, func(pts, dts int64, au [][]byte) error {
				frames = append(frames, frame{pts, dts, au})
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
	}
	if len(frames) == 0 {
		return nil, errors.New("no H.264 frames in the source")
	}
	return frames, nil
}

// run feeds frames to ffmpeg with args in real time for up to d and
// returns each frame's delay through it, on the first rung.
func run(args []string, frames []frame, d time.Duration) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := len(frames)
	for n > 0 && time.Duration(frames[n-1].dts-frames[0].dts)*time.Second/90000 > d {
		n--
	}
	written := make([]time.Time, n)
	fed := make(chan error, 1)
	go func() {
		defer stdin.Close()
		bw := bufio.NewWriterSize(stdin, 64<<10)
		track := &mpegts.Track{Codec: &mpegts.CodecH264{}}
		w := &mpegts.Writer{W: bw, Tracks: []*mpegts.Track{track}}
		if err := w.Initialize(); err != nil {
			fed <- err
			return
		}
		start := time.Now()
		for i, f := range frames[:n] {
			at := start.Add(time.Duration(f.dts-frames[0].dts) * time.Second / 90000)
			time.Sleep(time.Until(at))
			if err := w.WriteH264(track, f.pts, f.dts, f.au); err != nil {
				fed <- err
				return
			}
			if err := bw.Flush(); err != nil {
				fed <- err
				return
			}
			written[i] = time.Now()
		}
		fed <- nil
	}()
	tr := &mpegts.Reader{R: bufio.NewReaderSize(stdout, 64<<10)}
	if err := tr.Initialize(); err != nil {
		return nil, err
	}
	var delays []time.Duration
	got := 0
	tr.OnDataH264(tr.Tracks()[0], func(pts, dts int64, au [][]byte) error {
		if got < n && !written[got].IsZero() {
			delays = append(delays, time.Since(written[got]))
		}
		got++
		return nil
	})
	for {
		if err := tr.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
	}
	if err := <-fed; err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("%d frames out for %d in", got, n)
	}
	return delays, nil
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "delay:", err)
	os.Exit(1)
}
