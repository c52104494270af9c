package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plot draws p50, p99 and p99.9 through Envoy at the fixed rate (and, when
// measured, at the lower rate below it) as grouped bars per configuration,
// on a shared log scale, each bar labelled with its value.
func (r *Results) plot(path string) error {
	type panel struct {
		title string
		runs  func(*serverRuns) []sample
	}
	panels := []panel{{fmt.Sprintf("at %s, half of (i)'s maximum (the targets' rate)", fmtRate(r.EnvoyRate)),
		func(s *serverRuns) []sample { return s.Fixed }}}
	if base := r.envoy(cfgNone); base != nil && len(base.Runs.Low) > 0 {
		panels = append(panels, panel{fmt.Sprintf("at %s, %.0f%% of (i)'s maximum", fmtRate(r.EnvoyLowRate), 100*r.Cfg.EnvoyLowShare),
			func(s *serverRuns) []sample { return s.Low }})
	}
	quantiles := []struct {
		name string
		f    func(sample) time.Duration
	}{{"p50", p50}, {"p99", p99}, {"p99.9", p999}}
	// values[panel][quantile][configuration], in ms
	values := make([][][]float64, len(panels))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, pn := range panels {
		values[i] = make([][]float64, len(quantiles))
		for j, q := range quantiles {
			for _, e := range r.Envoy {
				ms := math.Max(float64(medianD(pn.runs(e.Runs), q.f))/1e6, 0.001)
				values[i][j] = append(values[i][j], ms)
				lo, hi = math.Min(lo, ms), math.Max(hi, ms)
			}
		}
	}
	floor := math.Pow(10, math.Floor(math.Log10(lo/1.5)))
	names := make([]string, len(r.Envoy))
	for i, e := range r.Envoy {
		names[i] = envoyConfigNames[e.Key].short
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("Latency through Envoy %s, median of %d rounds", pn.title, r.Cfg.Rounds)
		p.Title.Padding = vg.Points(6)
		p.Y.Label.Text = "ms (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks125{}
		p.NominalX(names...)
		p.Y.Min, p.Y.Max = floor, hi*2.5
		p.X.Min, p.X.Max = -0.5, float64(len(r.Envoy))-0.5
		p.Add(plotter.NewGrid())
		const width = 0.26
		for j, q := range quantiles {
			b := &logBars{values: values[i][j], offset: (float64(j) - 1) * width, width: width, floor: floor, color: plotutil.Color(j)}
			p.Add(b)
			pts := make(plotter.XYs, len(b.values))
			labels := make([]string, len(b.values))
			for k, v := range b.values {
				pts[k].X, pts[k].Y = float64(k)+b.offset, v*1.12
				labels[k] = fmtDur(time.Duration(v * 1e6))
			}
			lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
			if err != nil {
				return err
			}
			for k := range lbl.TextStyle {
				lbl.TextStyle[k].Font.Size = vg.Points(7.5)
				lbl.TextStyle[k].XAlign = -0.5
			}
			p.Add(lbl)
			p.Legend.Add(q.name, b)
		}
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Points(8)
		plots[i] = []*plot.Plot{p}
	}
	return writeColumn(path, plots, 4.5*vg.Inch)
}

// writeColumn draws plots (one per row) in a single column, each panelHeight
// tall and 9 inches wide, and writes the image to path as PNG; both figures
// of the report are laid out this way.
func writeColumn(path string, plots [][]*plot.Plot, panelHeight vg.Length) error {
	img := vgimg.New(9*vg.Inch, vg.Length(len(plots))*panelHeight)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(4),
		PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4)}, draw.New(img))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logBars are bars on a log-scale axis, drawn up from floor (gonum's
// BarChart starts bars at 0, which a log scale cannot place).
type logBars struct {
	values        []float64
	offset, width float64 // in category units
	floor         float64
	color         color.Color
}

func (b *logBars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for i, v := range b.values {
		x0, x1 := trX(float64(i)+b.offset-b.width/2), trX(float64(i)+b.offset+b.width/2)
		y0, y1 := trY(b.floor), trY(v)
		c.FillPolygon(b.color, c.ClipPolygonY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
	}
}

func (b *logBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, v := range b.values {
		ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
	}
	return -0.5, float64(len(b.values)) - 0.5, ymin, ymax
}

// Thumbnail draws the legend's swatch.
func (b *logBars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(b.color, c.ClipPolygonY(pts))
}

// logTicks125 labels 1, 2 and 5 of every decade.
type logTicks125 struct{}

func (logTicks125) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for dec := math.Floor(math.Log10(min)); dec <= math.Ceil(math.Log10(max)); dec++ {
		base := math.Pow10(int(dec))
		for i := 1; i < 10; i++ {
			v := base * float64(i)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 || i == 2 || i == 5 {
				t.Label = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
