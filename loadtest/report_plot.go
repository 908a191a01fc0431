package loadtest

import (
	"errors"
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// panel is one chart of the plot: a title, a unit and its lines.
type panel struct {
	title, unit string
	lines       []panelLine
}

type panelLine struct {
	name  string
	color color.Color
	value func(Second) float64
}

// WritePNG draws the time series as a PNG: viewers, throughput, p99
// latency of playlists and segments, and the one-minute user stall rate,
// one chart above the other on a shared time axis.
func (rep *Report) WritePNG(w io.Writer) error {
	if len(rep.Series) == 0 {
		return errors.New("plot: no time series")
	}
	blue, red, green := color.RGBA{B: 200, A: 255}, color.RGBA{R: 200, A: 255}, color.RGBA{G: 140, A: 255}
	panels := []panel{
		{"viewers", "players", []panelLine{{"viewers", blue, func(s Second) float64 { return float64(s.Viewers) }}}},
		{"throughput", "Gb/s", []panelLine{{"Gb/s", blue, func(s Second) float64 { return s.Gbps }}}},
		{"p99 latency", "ms", []panelLine{
			{"segment", blue, func(s Second) float64 { return s.Segment.Latency.P99 }},
			{"playlist", green, func(s Second) float64 { return s.Playlist.Latency.P99 }},
		}},
		{"one-minute user stall rate", "%", []panelLine{
			{"stall rate", red, func(s Second) float64 { return 100 * s.StallRate1m }},
		}},
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = pn.unit
		p.Y.Min = 0
		if i == len(panels)-1 {
			p.X.Label.Text = "seconds"
		}
		p.Add(plotter.NewGrid())
		for _, ln := range pn.lines {
			pts := make(plotter.XYs, len(rep.Series))
			for j, s := range rep.Series {
				pts[j] = plotter.XY{X: float64(s.T), Y: ln.value(s)}
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pn.title, err)
			}
			l.Color = ln.color
			l.Width = vg.Points(1.2)
			p.Add(l)
			if len(pn.lines) > 1 {
				p.Legend.Add(ln.name, l)
			}
		}
		if p.Y.Max <= p.Y.Min {
			p.Y.Max = p.Y.Min + 1
		}
		p.Legend.Top = true
		plots[i] = []*plot.Plot{p}
	}
	img := vgimg.New(vg.Points(720), vg.Points(220*float64(len(panels))))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter,
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("write png: %w", err)
	}
	return nil
}
